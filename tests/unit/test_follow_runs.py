"""Runs of follows: a follower's consecutive follows to distinct followees applied in one pass.

``follow_runs`` cuts a follower's events into runs and single events; ``FollowGraph.apply_follows``
applies a run with one read of the edges (and of the follower's last activity) and one write of
the copies, and takes back the copies of a follow whose edge was decided anew while it copied,
as ``FollowGraph.apply`` does for one event. The state against one-by-one application is checked
in ``test_follows_concurrency.py`` (agent) and ``test_replay_apply.py`` (replay).
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from types import SimpleNamespace
from typing import Any, Literal

import pytest

from fanout import MemoryStore, Settings, StoreError
from fanout.activity import FOLLOW_BAND, Activity
from fanout.agents.follows import RUN_MAX, follow_runs
from fanout.codec import FollowEvent
from fanout.core import Fanout
from fanout.graph import COPY_WRITE_ROWS, _copy_writes, _Room
from fanout.store import Edge, TimelineWrite

SETTINGS = Settings(follow_activity_limit=5, max_length=50, trim_every=10)
T0 = 1_700_000_000_000_000


def follow(followee: str, op: Literal["follow", "unfollow"] = "follow", partition: int = 0) -> tuple[Any, FollowEvent]:
    return SimpleNamespace(partition=partition), FollowEvent(follower="me", followee=followee, op=op)


def test_a_lane_is_cut_into_runs_of_distinct_followees_and_single_other_events() -> None:
    lane = [follow("a"), follow("b"), follow("a"), follow("c", "unfollow"), follow("d"), follow("e"), follow("f")]
    pieces = follow_runs(lane)
    assert [[(e.followee, e.op) for _, e in piece] for piece in pieces] == [
        [("a", "follow"), ("b", "follow")],
        [("a", "follow")],  # a second follow of a: after the first, on its own edge read
        [("c", "unfollow")],
        [("d", "follow"), ("e", "follow"), ("f", "follow")],
    ]
    long = follow_runs([follow(f"x{n}") for n in range(RUN_MAX * 2 + 1)])
    assert [len(piece) for piece in long] == [RUN_MAX, RUN_MAX, 1]
    merged = follow_runs([follow("a"), follow("b", partition=1), follow("c", partition=1)])  # a replay's merge
    assert [[e.followee for _, e in piece] for piece in merged] == [["a"], ["b", "c"]]  # a run: one partition
    assert follow_runs([]) == []


class CountingStore(MemoryStore):
    """Counts the edge and last-activity reads; when ``decide`` is set, the first timeline write
    of a copy into me's timeline is preceded by that decision of an edge (another partition's
    unfollow arriving while the follow copies)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = {"edge": 0, "edges": 0, "last_active": 0}
        self.decide: tuple[str, int] | None = None
        self.applied: list[int] = []  # rows into me's timeline, per ``apply`` call

    async def follow_edge(self, follower: str, followee: str) -> Edge | None:
        self.reads["edge"] += 1
        return await super().follow_edge(follower, followee)

    async def follow_edges(self, follower: str, followees: Collection[str] | None = None) -> dict[str, Edge]:
        self.reads["edges"] += 1
        return await super().follow_edges(follower, followees)

    async def last_active(self, user: str) -> int:
        self.reads["last_active"] += 1
        return await super().last_active(user)

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        self.applied.append(sum(w.feed == "timeline:me" for w in writes))
        if self.decide is not None and any(w.feed == "timeline:me" for w in writes):
            followee, at = self.decide
            self.decide = None
            await self.set_follow("me", followee, False, at)
        await super().apply(writes)


async def authors(store: MemoryStore, names: Sequence[str], posts: int = 3) -> None:
    writes = [TimelineWrite(f"user:{name}", a, a.ts) for name in names for a in [
        Activity(id=f"{name}-{n}", actor=name, verb="pin", object=f"o{n}", ts=T0 - 10_000 + n) for n in range(posts)]]
    await MemoryStore.apply(store, writes)


async def timeline(store: MemoryStore) -> list[str]:
    return sorted(a.id for a in await store.read("timeline:me", limit=100))


async def test_a_run_reads_its_edges_once_and_ends_as_the_follows_one_by_one() -> None:
    names = [f"a{n}" for n in range(10)]
    one_by_one, at_once = CountingStore(), CountingStore()
    for store in (one_by_one, at_once):
        await authors(store, names)
    await one_by_one.set_follow("me", "a3", True, T0 + 500)  # decided before, by a newer clock
    await at_once.set_follow("me", "a3", True, T0 + 500)
    follows = [(name, T0 + n, n % 2 == 0) for n, name in enumerate(names)]  # odd ones: from another partition

    single = Fanout(one_by_one, SETTINGS).graph
    copied = [await single.apply("me", f, True, clock, keyed=in_order) for f, clock, in_order in follows]
    run = await Fanout(at_once, SETTINGS).graph.apply_follows("me", follows)
    # one by one: each event reads its edge, and again after its copies (but a3, which lost)
    assert one_by_one.reads == {"edge": 19, "edges": 0, "last_active": 10}
    assert at_once.reads == {"edge": 0, "edges": 2, "last_active": 1}

    assert run == copied and copied[3] == 0 and sum(copied) == 9 * 3  # a3 (mis-keyed, older) lost
    assert await at_once.follow_edges("me") == await one_by_one.follow_edges("me")
    assert await timeline(at_once) == await timeline(one_by_one) == sorted(
        f"{name}-{n}" for name in names if name != "a3" for n in range(3))


@pytest.mark.parametrize("at_once", [False, True], ids=["one event", "a run"])
async def test_a_follow_decided_anew_while_it_copies_takes_its_copies_back(at_once: bool) -> None:
    store = CountingStore()
    await authors(store, ["a1", "a2"])
    graph = Fanout(store, SETTINGS).graph
    store.decide = ("a1", T0 + 1_000)  # an unfollow of a1 with a newer clock, decided mid-copy
    if at_once:
        copied = await graph.apply_follows("me", [("a1", T0, True), ("a2", T0 + 1, True)])
    else:
        copied = [await graph.apply("me", "a1", True, T0, keyed=True)]
    assert copied[0] == 0
    assert await store.follow_edge("me", "a1") == Edge(False, T0 + 1_000)
    assert await timeline(store) == (["a2-0", "a2-1", "a2-2"] if at_once else [])
    # the take-back deletes at the follow's own write time: a later fanout add cannot revive the copy
    cell = store._feeds["timeline:me"].cells["a1-0"]
    assert cell == (FOLLOW_BAND + T0, None)


async def test_a_runs_small_copies_share_a_writer_call_and_big_ones_are_cut() -> None:
    names = [f"a{n}" for n in range(10)]
    store = CountingStore()
    await authors(store, names)
    graph = Fanout(store, Settings(follow_activity_limit=5, trim_every=1_000)).graph
    assert await graph.apply_follows("me", [(name, T0 + n, True) for n, name in enumerate(names)]) == [3] * 10
    assert [n for n in store.applied if n] == [30]  # one request's worth, not one write per follow
    assert len(await store.read("timeline:me", limit=100)) == 30

    big = {f"b{n}": n for n in range(5)}
    newest = {f: [Activity(id=f"{f}-{i}", actor=f, verb="v", object="o", ts=i) for i in range(150)] for f in big}
    calls = list(_copy_writes(["timeline:me"], newest, big, _Room({}, 1000)))
    assert [len(c) for c in calls] == [300, 300, 150]  # cut where the next follow would pass the cap
    assert 300 <= COPY_WRITE_ROWS < 450
    assert [w.activity.id for c in calls for w in c] == [a.id for f in big for a in newest[f]]
    assert {w.write_ts for w in calls[2]} == {FOLLOW_BAND + 4}
    huge = {"h": [Activity(id=f"h-{i}", actor="h", verb="v", object="o", ts=i) for i in range(1_000)]}
    alone = _copy_writes(["timeline:me", "other:me"], huge, {"h": 1}, _Room({}, 1000))
    assert [len(c) for c in alone] == [2_000]  # a bigger copy alone


async def test_a_run_refuses_two_events_of_one_edge() -> None:
    graph = Fanout(MemoryStore(), SETTINGS).graph
    with pytest.raises(ValueError, match="one event per followee"):
        await graph.apply_follows("me", [("a1", T0, True), ("a1", T0 + 1, True)])


class FailingOnceStore(MemoryStore):
    """Refuses the first timeline write into me's timeline (a write timeout): the edges are then
    written and the copies not."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        if not self.failed and any(w.feed == "timeline:me" for w in writes):
            self.failed = True
            raise StoreError("Cassandra write failed: WriteTimeout (injected)", retriable=True)
        await super().apply(writes)


@pytest.mark.parametrize("in_order", [True, False], ids=["in order", "mis-keyed"])
@pytest.mark.parametrize("at_once", [False, True], ids=["one event", "a run"])
async def test_a_follow_retried_after_its_edge_was_written_still_copies(at_once: bool, in_order: bool) -> None:
    """The retry of a follow that failed after its edge write finds its own decision stored; a
    mis-keyed one (ordered by its clock alone) must take it for its own, not for a newer one."""
    store = FailingOnceStore()
    await authors(store, ["a1", "a2"])
    graph = Fanout(store, SETTINGS).graph
    follows = [("a1", T0, in_order), ("a2", T0 + 1, in_order)]

    async def attempt() -> list[int]:
        if at_once:
            return await graph.apply_follows("me", follows)
        return [await graph.apply("me", f, True, clock, keyed=o) for f, clock, o in follows]

    with pytest.raises(StoreError, match="injected"):
        await attempt()
    assert await store.follow_edge("me", "a1") == Edge(True, T0)  # decided, nothing copied yet
    assert await attempt() == [3, 3]
    assert await timeline(store) == sorted(f"{a}-{n}" for a in ("a1", "a2") for n in range(3))
