"""Delivery tracing (``fanout.tracing``) on both stores: planned and written chunks per priority,
complete only once every planned chunk landed, re-deliveries counted once, removals apart."""

from __future__ import annotations

from collections.abc import Callable

from fanout import Fanout, Settings
from fanout.store import Store
from fanout.tracing import ChunkLanded, PlannedChunks, delivery_report
from fanout.writer import TimelineWriter

from .helpers import Recorder, at, make_fanout

Names = Callable[[str], str]


async def _planned(store: Store, settings: Settings, unique_name: Names, *, fans: int, high: int
                   ) -> tuple[Fanout, Recorder, str, list[str]]:
    """A pipeline-like planner (chunks kept by a Recorder) with ``fans`` followers, ``high`` active."""
    sink = Recorder()
    author = unique_name("author")
    names = [unique_name(f"fan{i:02d}") for i in range(fans)]
    planner = make_fanout(store, settings, chunk_size=10, sink=sink)
    for fan in names:
        await planner.follow(fan, author)
    for fan in names[:high]:
        await planner.mark_active(fan)
    return planner, sink, author, names


async def test_a_fanout_is_complete_only_once_every_planned_chunk_landed(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    planner, sink, author, _ = await _planned(store, settings, unique_name, fans=25, high=12)
    writer = TimelineWriter(store, max_length=100, trim_every=50)
    activity = await planner.add(actor=author, verb="pin", object="o", time=at(1))
    assert [(c.priority, len(c.feeds)) for c in sink.chunks] == [("high", 10), ("low", 10), ("high", 2), ("low", 3)]

    report = await planner.delivery(activity.id)
    assert report.add is not None and report.remove is None
    assert report.add.planned and not report.add.complete
    high, low = report.add.priorities["high"], report.add.priorities["low"]
    assert (high.chunks_planned, high.feeds_planned, high.chunks_written) == (2, 12, 0)
    assert (low.chunks_planned, low.feeds_planned, low.chunks_written) == (2, 13, 0)
    assert report.add.first_landed is None

    await writer.write_chunks(sink.chunks[:3])
    report = await planner.delivery(activity.id)
    assert report.add is not None and not report.add.complete
    assert report.add.priorities["high"].chunks_written == 2
    assert report.add.priorities["low"].chunks_written == 1

    await writer.write_chunks(sink.chunks[3:])
    report = await planner.delivery(activity.id)
    assert report.add is not None and report.add.complete
    assert report.add.priorities["low"].feeds_written == 13
    assert report.add.first_landed is not None and report.add.last_landed is not None
    assert report.add.first_landed <= report.add.last_landed


async def test_a_redelivered_chunk_is_counted_once(store: Store, settings: Settings, unique_name: Names) -> None:
    planner, sink, author, _ = await _planned(store, settings, unique_name, fans=25, high=0)
    writer = TimelineWriter(store, max_length=100, trim_every=50)
    activity = await planner.add(actor=author, verb="pin", object="o", time=at(1))
    assert len(sink.chunks) == 3
    for _ in range(3):  # a writer that crashed before committing, twice, and a batch holding a chunk twice
        await writer.write_chunks([sink.chunks[0], sink.chunks[0], sink.chunks[1]])
    report = await planner.delivery(activity.id)
    assert report.add is not None and not report.add.complete
    assert (report.add.priorities["low"].chunks_written, report.add.priorities["low"].feeds_written) == (2, 20)
    await writer.write_chunks(sink.chunks)
    report = await planner.delivery(activity.id)
    assert report.add is not None and report.add.complete
    assert (report.add.priorities["low"].chunks_written, report.add.priorities["low"].feeds_written) == (3, 25)


async def test_a_removal_is_traced_apart_and_chunks_before_the_plan_are_not_complete(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    planner, sink, author, _ = await _planned(store, settings, unique_name, fans=5, high=5)
    writer = TimelineWriter(store, max_length=100, trim_every=50)
    activity = await planner.add(actor=author, verb="pin", object="o", time=at(1))
    await writer.write_chunks(sink.chunks)
    await planner.remove(activity.id, actor=author)
    removal = sink.chunks[-1]
    assert removal.op == "remove"
    report = await planner.delivery(activity.id)
    assert report.add is not None and report.add.complete
    assert report.remove is not None and report.remove.planned and not report.remove.complete
    await writer.write_chunks([removal])
    report = await planner.delivery(activity.id)
    assert report.remove is not None and report.remove.complete
    assert report.remove.priorities["high"].feeds_written == 5

    # a chunk that landed before its plan was recorded (still planning): not complete
    other = unique_name("activity")
    await store.record_landed([ChunkLanded(other, "add", "timeline:x", "high", 100, 1)])
    early = await planner.delivery(other)
    assert early.add is not None and not early.add.planned and not early.add.complete
    assert early.add.priorities["high"].chunks_planned is None
    assert (await planner.delivery(unique_name("unknown"))).add is None


async def test_the_eager_mode_traces_too(store: Store, settings: Settings, unique_name: Names) -> None:
    fanout = make_fanout(store, settings, chunk_size=2)
    author = unique_name("author")
    for i in range(5):
        await fanout.follow(unique_name(f"fan{i}"), author)
    activity = await fanout.add(actor=author, verb="pin", object="o", time=at(2))
    report = await fanout.delivery(activity.id)
    assert report.add is not None and report.add.complete
    assert report.add.priorities["low"].chunks_written == 3
    assert report.add.priorities["low"].feeds_written == 5
    lonely = await fanout.add(actor=unique_name("nobody"), verb="pin", object="o", time=at(3))
    report = await fanout.delivery(lonely.id)  # no followers: a plan of nothing, complete at once
    assert report.add is not None and report.add.complete


def test_the_report_asks_every_planned_priority_to_be_reached() -> None:
    plans = [PlannedChunks("a", "add", "high", 1, 3, 10), PlannedChunks("a", "add", "low", 0, 0, 10)]
    landed = [ChunkLanded("a", "add", "timeline:1", "high", 3, 20)]
    report = delivery_report("a", plans, landed)
    assert report.add is not None and report.add.complete
    assert not delivery_report("a", plans[:1], landed).add.complete  # type: ignore[union-attr]
    assert not delivery_report("a", plans, []).add.complete  # type: ignore[union-attr]
