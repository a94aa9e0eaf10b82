"""A follow copies in only what the follower's feed keeps: a copy older than a full feed's oldest
kept entry would be trimmed at once, and each trimmed copy is a row tombstone (copies are written
above the trims' range deletes) that every later trim of the feed and every read past its live rows
meets; ~100 follows of 1,000 entries each reached Cassandra's 100,000 (``fanout.graph._Room``)."""

from __future__ import annotations

import random
from collections.abc import Sequence

import pytest

from fanout import Fanout, MemoryStore, Settings
from fanout.activity import Activity, to_micros
from fanout.store import TimelineWrite
from tests.contract.helpers import at

T0 = 1_800_000_000_000_000
MAX = 10


async def posts(store: MemoryStore, author: str, seconds: list[int]) -> list[Activity]:
    """``author``'s posts at those seconds, straight into its user feed (as the planner writes them)."""
    acts = [Activity(id=f"{author}-{s}", actor=author, verb="pin", object=f"o{s}", ts=to_micros(at(s)))
            for s in seconds]
    await store.apply([TimelineWrite(f"user:{author}", a, a.ts) for a in acts])
    return acts


@pytest.mark.parametrize("path", ["one by one", "a run"])
async def test_copies_older_than_a_full_feed_keeps_are_not_written(path: str) -> None:
    store = MemoryStore()
    fanout = Fanout(store, Settings(max_length=MAX, trim_every=5))
    fresh = await posts(store, "fresh", list(range(1000, 1000 + MAX)))
    olds = [f"old{i}" for i in range(50)]
    for i, old in enumerate(olds):
        await posts(store, old, list(range(i * MAX, (i + 1) * MAX)))
    await fanout.follow("reader", "fresh")
    if path == "one by one":
        for old in olds:
            assert await fanout.follow("reader", old) == MAX  # what the follow brings, as before
    else:
        assert await fanout.graph.apply_follows("reader", [(o, T0 + n, True) for n, o in enumerate(olds)]) == [MAX] * 50
    assert [a.id for a in await fanout.read("reader", limit=100)] == [a.id for a in reversed(fresh)]
    assert store.footprint().tombstones == 0  # before: 500, a row tombstone for each trimmed copy


@pytest.mark.parametrize("seed", range(6))
async def test_the_feed_is_the_newest_of_what_it_follows_either_way(seed: int) -> None:
    """Interleaved followees, followed in a random order, one by one or as one run: the feed is
    the newest ``max_length`` of their posts (a reference model), and both ways write the same."""
    rng = random.Random(seed)
    followees = [f"a{i}" for i in range(12)]
    seconds = {name: sorted(rng.sample(range(500), 12)) for name in followees}
    order = rng.sample(followees, len(followees))
    feeds = []
    for path in ("one by one", "a run"):
        store = MemoryStore()
        fanout = Fanout(store, Settings(max_length=MAX, trim_every=3, follow_activity_limit=8))
        every: list[Activity] = []
        for name in followees:
            every += (await posts(store, name, seconds[name]))[-8:]  # the newest 8 are copied
        if path == "one by one":
            for name in order:
                await fanout.follow("reader", name)
        else:
            await fanout.graph.apply_follows("reader", [(name, T0 + n, True) for n, name in enumerate(order)])
        want = sorted(every, key=lambda a: a.key, reverse=True)[:MAX]
        got = await fanout.read("reader", limit=MAX)
        assert [a.id for a in got] == [a.id for a in want]
        feeds.append(sorted(store._feeds["timeline:reader"].cells))
    assert feeds[0] == feeds[1]  # the same rows written


class DecidedAnew(MemoryStore):
    """Once ``A``'s copies land in the reader's feed, another partition's unfollow decides A's edge
    anew (a race the follow's re-read of its edge catches: it takes its copies back)."""

    fired = False

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        await super().apply(writes)
        if not self.fired and any(w.feed == "timeline:reader" and w.activity.actor == "A" and not w.remove
                                  for w in writes):
            self.fired = True
            edge = await self.follow_edge("reader", "A")
            assert edge is not None
            await self.set_follow("reader", "A", False, edge.at + 1, source=7)


@pytest.mark.parametrize("path", ["one by one", "a run"])
async def test_a_follow_taken_back_leaves_room_for_the_next_ones_copies(path: str) -> None:
    """A run fits B's copies beside A's; when A's are taken back, B's are fitted again, so the run
    ends as the follows one by one: B's posts fill the feed."""
    store = DecidedAnew()
    fanout = Fanout(store, Settings(max_length=MAX, trim_every=50, follow_activity_limit=MAX))
    for author, base in (("A", 10_000), ("B", 0)):  # A's posts are all newer than B's
        acts = [Activity(id=f"{author}{n}", actor=author, verb="v", object="o", ts=T0 + base + n) for n in range(MAX)]
        await MemoryStore.apply(store, [TimelineWrite(f"user:{author}", a, a.ts) for a in acts])
    follows = [("A", T0 + 1_000_000, True), ("B", T0 + 1_000_001, True)]
    if path == "a run":
        copied = await fanout.graph.apply_follows("reader", follows, partition=1)
    else:
        graph = fanout.graph
        copied = [await graph.apply("reader", f, True, clock, keyed=True, partition=1) for f, clock, _ in follows]
    assert copied == [0, MAX]
    assert [a.id for a in await store.read("timeline:reader", limit=100)] == [f"B{n}" for n in reversed(range(MAX))]
