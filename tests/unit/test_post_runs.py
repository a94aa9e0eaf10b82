"""Runs of posts: an actor's consecutive adds are fanned out in one pass over its followers.

``Fanout.handle_activities`` must end exactly as ``handle_activity`` event by event (every
result, every chunk, every feed cell with its write time, the registry), read the followers once
per run instead of once per post, keep a remove after the adds before it, and with hybrid fanout
leave every follower reading the same timeline when a run crosses the pull threshold. The planner
agent plans a lane's events in one call and, when the store refuses it, one by one, so that only
the refused record is dead-lettered.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest

from fanout import Fanout, MemoryStore, Settings, StoreError
from fanout.activity import now_micros
from fanout.agents.planner import RUN_MAX, post_runs
from fanout.codec import ActivityEvent, activity_event, remove_event
from fanout.errors import InvalidEvent
from fanout.store import PriorityPage, PullState

from ..contract.test_targets import Recorder
from .test_planner_concurrency import activity_value, chunks, dead_letters, planner_on, state
from .test_poison_records import Record

NOW = now_micros()
T0 = NOW - 3_600_000_000
SETTINGS = Settings(chunk_size=25, follower_page_size=40, pull_threshold=0, feed_kinds=("timeline", "aggregated"))


class CountingStore(MemoryStore):
    """Counts the passes over each actor's follower pages."""

    def __init__(self) -> None:
        super().__init__()
        self.passes: Counter[str] = Counter()

    async def priority_pages(self, followee: str, now: int, page_size: int) -> AsyncIterator[PriorityPage]:
        self.passes[followee] += 1
        async for page in super().priority_pages(followee, now, page_size):
            yield page


async def network(store: MemoryStore, seed: int) -> None:
    rng = random.Random(seed)
    for author, count in (("a", 130), ("b", 30)):
        for n in range(count):
            active = NOW + 86_400_000_000 if rng.random() < 0.3 else 0
            await store.set_follow(f"f{n}", author, True, T0, active)


def add(actor: str, activity_id: str, **extra: Any) -> ActivityEvent:
    return activity_event(actor=actor, verb="pin", object=f"o-{activity_id}", id=activity_id, **extra)


EVENTS = [
    add("a", "a1"), add("a", "a2"), add("a", "bad", time="1990-01-01T00:00:00Z"), add("a", "a3"),
    add("b", "b1"), remove_event("a2", actor="a"), add("a", "a4"), add("a", "a2"), add("a", "a5"),
    add("a", "a4"), remove_event("nope", actor="a"), add("b", "a5"),  # a conflict: a5 is a's
]


def outcome(result: Any) -> Any:
    if isinstance(result, InvalidEvent):
        return ("invalid", result.reason)
    return (result.activity and result.activity.id, result.op, result.chunks, result.feeds, result.skipped)


async def planned(store: MemoryStore, settings: Settings, together: bool) -> tuple[list[Any], Recorder]:
    sink = Recorder()
    fanout = Fanout(store, settings, sink=sink)
    pairs = [(event, T0 + n) for n, event in enumerate(EVENTS)]
    if together:
        return [outcome(r) for r in await fanout.handle_activities(pairs)], sink
    results = []
    for event, accepted in pairs:
        try:
            results.append(outcome(await fanout.handle_activity(event, accepted)))
        except InvalidEvent as exc:
            results.append(outcome(exc))
    return results, sink


def sent(sink: Recorder) -> Counter[tuple[str, str, str, tuple[str, ...], int]]:
    return Counter((c.op, c.priority, c.activity.id, tuple(c.feeds), c.write_ts) for c in sink.chunks)


@pytest.mark.parametrize("seed", range(4))
async def test_a_run_reads_the_followers_once_and_ends_as_the_events_one_by_one(seed: int) -> None:
    runs, one_by_one = CountingStore(), CountingStore()
    for store in (runs, one_by_one):
        await network(store, seed)
    got, got_sink = await planned(runs, SETTINGS, together=True)
    want, want_sink = await planned(one_by_one, SETTINGS, together=False)
    assert got == want
    assert [r for r in want if r[0] == "invalid"] == [("invalid", "time"), ("invalid", "conflict")]
    assert sent(got_sink) == sent(want_sink) and len(want_sink.chunks) > 40
    assert await state(runs) == await state(one_by_one)
    # a: a1-a3 together, the remove of a2, then a4, a2 (already removed: not fanned), a5, a4 together
    assert one_by_one.passes == {"a": 7, "b": 1}
    assert runs.passes == {"a": 3, "b": 1}


async def test_a_remove_is_sent_after_the_adds_before_it() -> None:
    store = MemoryStore()
    await network(store, 1)
    sink = Recorder()
    fanout = Fanout(store, SETTINGS, sink=sink)
    events = [add("a", "x"), add("a", "y"), remove_event("x", actor="a"), add("a", "z")]
    await fanout.handle_activities([(e, T0 + n) for n, e in enumerate(events)])
    ops = [(c.op, c.activity.id) for c in sink.chunks]
    first_remove = ops.index(("remove", "x"))
    assert {i for op, i in ops[:first_remove]} == {"x", "y"} and ("add", "z") not in ops[:first_remove]
    assert {i for op, i in ops[first_remove:] if op == "add"} == {"z"}


@pytest.mark.parametrize("threshold", [20, 60, 500])
async def test_a_run_crossing_the_pull_threshold_reads_as_one_by_one(threshold: int) -> None:
    """Hybrid fanout on: a run that passes the threshold mid-pass is merged from then on, every
    post of it; the followers read what they read with the posts planned one by one."""
    settings = SETTINGS.replace(pull_threshold=threshold, feed_kinds=("timeline",))
    readers = []
    for together in (True, False):
        store = MemoryStore()
        await network(store, 2)
        fanout = Fanout(store, settings)
        events = [add("a", f"p{n}") for n in range(4)] + [add("b", "q")] + [add("a", f"r{n}") for n in range(3)]
        pairs = [(e, T0 + n) for n, e in enumerate(events)]
        if together:
            assert not [r for r in await fanout.handle_activities(pairs) if isinstance(r, InvalidEvent)]
        else:
            for event, accepted in pairs:
                await fanout.handle_activity(event, accepted)
        readers.append({f"f{n}": [a.id for a in await fanout.read(f"f{n}", limit=50)] for n in range(130)})
    assert readers[0] == readers[1]
    assert len(readers[0]["f0"]) == 8  # f0 follows a and b: every post, pushed or merged


class RefusingStore(MemoryStore):
    """Refuses (not retriably) to register activity ``bad``: a value the database rejects."""

    async def put_activity(self, activity: Any) -> None:
        if activity.id == "bad":
            raise StoreError("refused: bad value", retriable=False)
        await super().put_activity(activity)


async def test_the_planner_plans_a_refused_run_one_by_one_and_dead_letters_only_the_refused_record() -> None:
    store, reference = RefusingStore(), MemoryStore()
    for s in (store, reference):
        await network(s, 3)
    topic = SETTINGS.topic("activities")
    records = [Record(topic, 0, n, T0 // 1000 + n, b"a", activity_value("a", i)) for n, i in
               enumerate(["a1", "a2", "bad", "a3"])]
    planner, producer = planner_on(store)
    await planner.on_started()
    await planner.process(records)
    assert dead_letters(producer) == [(2, "store")]
    good = [r for r in records if r.offset != 2]
    one_by_one, ref_producer = planner_on(reference)
    await one_by_one.on_started()
    for rec in good:
        await one_by_one.process([rec])
    assert Counter(chunks(producer)) == Counter(chunks(ref_producer))
    assert {activity_id for _, _, _, activity_id, _, _ in chunks(producer)} == {"a1", "a2", "a3"}


class FlakyOnce(MemoryStore):
    """put_activity of ``a4`` fails once, retriably (a timeout)."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def put_activity(self, activity: Any) -> None:
        if activity.id == "a4" and not self.failed:
            self.failed = True
            raise StoreError("timeout", retriable=True)
        await super().put_activity(activity)


def lane() -> list[Record]:
    """a1-a3 (a run), the remove of a1, then a4, whose first registration fails retriably."""
    values = [activity_value("a", "a1"), activity_value("a", "a2"), activity_value("a", "a3"),
              activity_value("a", "a1", "remove"), activity_value("a", "a4")]
    return [Record(SETTINGS.topic("activities"), 0, n, T0 // 1000 + n, b"a", v) for n, v in enumerate(values)]


async def test_a_transient_failure_plans_only_its_run_again() -> None:
    """A timeout on a4 plans only a4 again: no chunk of the run before it, nor of the remove, is
    sent twice (one by one, only a4 is retried)."""
    store, reference = FlakyOnce(), FlakyOnce()
    for s in (store, reference):
        await network(s, 0)
    planner, producer = planner_on(store, agent_retry_attempts=3)
    await planner.on_started()
    await planner.process(lane())
    one_by_one, ref_producer = planner_on(reference, agent_retry_attempts=3)
    await one_by_one.on_started()
    for record in lane():
        await one_by_one.process([record])
    got, want = Counter(chunks(producer)), Counter(chunks(ref_producer))
    assert sum(want.values()) == len(want)  # one by one: every chunk sent once
    dups = Counter(c[1:4:2] for c, n in got.items() if n > 1)
    assert not dups, f"chunks sent twice (op, id): {dict(dups)}; {sum(got.values())} vs {sum(want.values())} chunks"


class AlwaysTimingOut(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()

    async def get_activity(self, activity_id: str) -> Any:
        self.calls[activity_id] += 1
        raise StoreError("timeout", retriable=True)


async def test_a_store_outage_gets_the_configured_retries_once() -> None:
    store = AlwaysTimingOut()
    planner, _ = planner_on(store, agent_retry_attempts=2)
    await planner.on_started()
    with pytest.raises(StoreError):
        await planner.process(lane()[:2])
    # a1 and a2 are registered together: each is tried once an attempt
    assert store.calls == {"a1": 2, "a2": 2}, f"FANOUT_AGENT_RETRY_ATTEMPTS=2 but the store was tried {store.calls}"


async def test_crossing_down_in_a_run_pushes_each_post_once() -> None:
    """A pulled account crossing down in a run: the run's later adds, already in the author's
    feed, are not in the first add's backfill; each post is pushed once, as one by one."""
    settings = SETTINGS.replace(pull_threshold=400, feed_kinds=("timeline",))  # a: 130 followers <= 200
    sinks = []
    for together in (True, False):
        store = MemoryStore()
        await network(store, 0)
        await store.set_pull_state("a", PullState(T0 - 10, 0))
        sink = Recorder()
        fanout = Fanout(store, settings, sink=sink)
        pairs = [(add("a", f"p{n}"), T0 + n) for n in range(4)]
        if together:
            await fanout.handle_activities(pairs)
        else:
            for event, accepted in pairs:
                await fanout.handle_activity(event, accepted)
        sinks.append(sink)
    got, want = sent(sinks[0]), sent(sinks[1])
    assert got == want, (
        f"{sum(got.values())} chunks in a run, {sum(want.values())} one by one; sent twice: "
        f"{sorted({k[2] for k, n in got.items() if n > 1})}")


async def test_events_without_a_time_each_get_their_own_clock_reading() -> None:
    """Two identical posts without a time or ``accepted_ts`` are two activities, in a run as one
    by one: each event is accepted at its own clock reading."""
    counts = []
    for together in (True, False):
        store = MemoryStore()
        fanout = Fanout(store, SETTINGS)
        events = [activity_event(actor="u", verb="post", object="hello") for _ in range(2)]
        if together:
            await fanout.handle_activities([(e, None) for e in events])
        else:
            for e in events:
                await fanout.handle_activity(e)
        counts.append(len(await store.read("user:u", limit=10)))
    assert counts[0] == counts[1], f"run: {counts[0]} post(s) in user:u, one by one: {counts[1]}"


def test_a_lane_is_cut_into_runs_of_one_actors_adds_and_single_other_events() -> None:
    events = [add("a", "1"), add("a", "2"), remove_event("1", actor="a"), add("a", "3"), add("b", "4"),
              add("b", "5"), add("a", "6")] + [add("c", f"c{n}") for n in range(RUN_MAX + 1)]
    pieces = post_runs([(n, e) for n, e in enumerate(events)])
    assert [[n for n, _ in piece] for piece in pieces][:5] == [[0, 1], [2], [3], [4, 5], [6]]
    assert [len(piece) for piece in pieces[5:]] == [RUN_MAX, 1]
