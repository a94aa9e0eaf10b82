"""``fanout replay`` and ``fanout rebuild`` on the real broker and the real Cassandra node.

Each test gets its own topics (unique prefix) and keyspace. Workloads are produced straight to
``activities`` and ``follows`` with a bare aiokafka producer; every event carries an explicit
``time`` and the record timestamp is that time, strictly increasing, so "production order",
"timestamp order" and the eager reference's order are one and the same.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import pytest

from fanout.agents.rebuild import rebuild_users
from fanout.agents.replay import ReplayConflict
from fanout.agents.topics import create_topics, delete_topics
from fanout.agents.worker import build_agent
from fanout.cassandra import CassandraStore
from fanout.settings import Settings
from tests.integration.replay_helpers import (
    StopAfter,
    Workload,
    assert_same,
    commit_at_end,
    eager,
    produce,
    replay_settings,
    run,
    snapshot,
    wait_live_drained,
)

pytestmark = pytest.mark.integration


@pytest.fixture
async def env() -> AsyncIterator[tuple[Settings, CassandraStore]]:
    settings = replay_settings()
    await create_topics(settings)
    store = await CassandraStore.connect(settings)
    try:
        await store.migrate()
        yield settings, store
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()
            await delete_topics(settings)


async def test_replay_rebuilds_the_same_timelines_idempotently(env: tuple[Settings, CassandraStore]) -> None:
    settings, store = env
    w = Workload(1, start_ms=int(time.time() * 1000) - 3 * 3_600_000)
    w.graph(90).mixed(420)
    events = w.take()
    await produce(settings, events)

    # settle: the first replay is what applies the history to the empty store
    first = await run(settings, store)
    assert (first.events, first.invalid, first.resumed) == (len(events), w.invalid, False)
    assert first.chunks_high > 0 and first.chunks_low > 0  # HIGH (authors) and LOW (lurkers) followers
    assert first.activities + first.follows + first.invalid == len(events)
    settled = await snapshot(store)
    assert_same(settled, await eager(settings, events))
    assert any(f.startswith("timeline:") for f in settled) and any(f.startswith("user:") for f in settled)

    # a lost table: drop every timeline, replay from the beginning
    await store.drop_timelines()
    assert await store.feed_ids() == []
    again = await run(settings, store, reset=True)
    assert again.events == len(events) and again.rows > 0
    assert_same(await snapshot(store), settled)

    # replaying onto full timelines changes nothing (no duplicates); a finished replay run
    # again (no reset needed) starts over
    twice = await run(settings, store)
    assert not twice.resumed and twice.events == len(events)
    assert_same(await snapshot(store), settled)

    # `fanout rebuild USER` gives each user the timeline the full replay gave them
    users = ["l0", "l1", "a0", "a3", "nobody"]
    copied = await rebuild_users(settings, users, store=store)
    assert set(copied) == set(users)
    for user in users:
        feed = f"timeline:{user}"
        assert await store.read(feed, limit=100_000) == settled.get(feed, []), user


async def test_replay_resumes_and_targets_users_and_kinds(env: tuple[Settings, CassandraStore]) -> None:
    settings, store = env
    settings = settings.replace(batch_max_records=50)
    w = Workload(2, start_ms=int(time.time() * 1000) - 3 * 3_600_000)
    events = w.graph(80).mixed(300).take()
    await produce(settings, events)
    await run(settings, store)
    settled = await snapshot(store)

    # interrupt after a few batches (stop is honoured between batches), then resume
    await store.drop_timelines()
    stop = asyncio.Event()
    stopper = StopAfter(store, stop, applies=40)
    part = await run(settings, stopper, reset=True, stop=stop)
    assert part.interrupted and 0 < part.events < len(events)
    with pytest.raises(ReplayConflict):  # another replay may not take over an unfinished one
        await run(settings, store, users=["l2", "a1"])
    rest = await run(settings, store, since=0)  # resumes: `since` only places a fresh replay
    assert rest.resumed and not rest.interrupted
    assert part.events + rest.events == len(events)  # each record exactly once: commits per batch
    assert_same(await snapshot(store), settled)

    # via Kafka: the chunks go to high/low and the writer agents apply them (onto full timelines:
    # nothing changes)
    via = await run(settings, store, via_kafka=True)
    assert via.published_rows > 0 and via.chunks_high + via.chunks_low > 0
    writers = [build_agent("writer", settings, store, priority=p) for p in ("high", "low")]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(a.run(stop)) for a in writers]
    try:
        await wait_live_drained(settings, stop_if=tasks, roles=("high", "low"))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    # every published row, then the deletes of the rows of followers whose edge is off by now (the
    # writers' look at the edges after a batch; their unfollows had deleted the rows already)
    undone = sum(a.writer.rows_undone for a in writers)  # type: ignore[attr-defined]
    assert sum(a.rows_written for a in writers) - undone == via.published_rows  # type: ignore[attr-defined]
    assert_same(await snapshot(store), settled)

    # only some users: their timelines (and the authors' user feeds), nobody else's
    await store.drop_timelines()
    chosen = await run(settings, store, users=["l2", "a1", "l5"])  # the last replay finished
    assert chosen.skipped > 0
    got = await snapshot(store)
    want = {f: v for f, v in settled.items()
            if f.startswith("user:") or f in ("timeline:l2", "timeline:a1", "timeline:l5")}
    assert_same(got, want)

    # a new feed kind, built from history: the same entries as the timelines
    await run(settings, store, kind="news", reset=True)
    got = await snapshot(store)
    news = {f.replace("timeline:", "news:"): v for f, v in settled.items() if f.startswith("timeline:")}
    assert_same({f: v for f, v in got.items() if f.startswith("news:")}, news)


async def test_replay_while_live_traffic_flows(env: tuple[Settings, CassandraStore]) -> None:
    """The live agents (own groups) keep working while the replay runs and more events arrive;
    afterwards the timelines equal the eager result over all events."""
    settings, store = env
    w = Workload(3, start_ms=int(time.time() * 1000) - 3 * 3_600_000)
    history = w.graph(90).mixed(300).take()
    await produce(settings, history)
    await run(settings, store)
    assert_same(await snapshot(store), await eager(settings, history))

    # the live agents are up to date with the history (as if they had processed it)
    await commit_at_end(settings)
    agents = [build_agent(role, settings, store, priority=prio)
              for role, prio in (("planner", None), ("follows", None), ("writer", "high"), ("writer", "low"))]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(a.run(stop)) for a in agents]
    try:
        await asyncio.wait_for(asyncio.gather(*(a.running.wait() for a in agents)), 30)
        # Live traffic. The pipeline itself (not the replay) cannot order an unfollow against a
        # chunk of the followee that is already in flight, so live unfollows here are of authors
        # who do not post during this phase (see REPLAY.md, "Limits").
        w.clock += 3_600_000
        quiet, loud = w.authors[:3], w.authors[3:]
        live = w.mixed(260, unfollow_from=quiet, posters=loud).take()
        replaying = asyncio.ensure_future(run(settings, store, reset=True))
        await produce(settings, live, pause=0.05, slices=12)
        summary = await asyncio.wait_for(replaying, 90)
        assert summary.events >= len(history)
        await wait_live_drained(settings, stop_if=tasks)
        print(f"replay: {summary.events} events ({summary.batches} batches), live agents: "
              f"{[(a.role, a.records) for a in agents]}")
        assert all(a.records > 0 for a in agents)  # the live pipeline worked meanwhile
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        assert task.exception() is None
    assert_same(await snapshot(store), await eager(settings, history + live))

