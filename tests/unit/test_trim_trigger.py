"""When ``TimelineWriter`` trims a feed: the bounds README.md states, checked on one ``MemoryStore``.

Several writers on one store stand for several writer processes; a new ``TimelineWriter`` stands
for a restarted process. "Overshoot" is what a feed holds past ``max_length``. The hash rule is
deterministic (feed id and activity id), so every number here is the same on every run.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from fanout import MemoryStore, StoreError
from fanout.activity import Activity
from fanout.store import TimelineWrite
from fanout.writer import TimelineWriter

MAX, EVERY = 3, 5
T0 = 1_700_000_000_000_000


def post(n: int) -> Activity:
    """The n-th activity (newer with n)."""
    return Activity(id=f"post-{n:05d}", actor="star", verb="pin", object=f"o{n}", ts=T0 + n * 1_000_000)


def inserts(feeds: Sequence[str], n: int) -> list[TimelineWrite]:
    """Activity n into every feed (what one fanout chunk carries)."""
    activity = post(n)
    return [TimelineWrite(feed, activity, activity.ts) for feed in feeds]


class Probe(MemoryStore):
    """A MemoryStore that records the most rows each feed (or each of ``watch``) held after any
    write, and counts trims (failing the next ``fail`` of them)."""

    def __init__(self, watch: Sequence[str] | None = None) -> None:
        super().__init__()
        self.watch = None if watch is None else set(watch)
        self.peak: dict[str, int] = {}
        self.trims = 0
        self.fail = 0

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        await super().apply(writes)
        for feed in {w.feed for w in writes} if self.watch is None else self.watch:
            self.peak[feed] = max(self.peak.get(feed, 0), await rows(self, feed))

    async def trim(self, feed: str, max_length: int) -> int:
        self.trims += 1
        if self.fail:
            self.fail -= 1
            raise StoreError("trim: the node timed out", retriable=True)
        return await super().trim(feed, max_length)


async def rows(store: MemoryStore, feed: str) -> int:
    return len(await store.read(feed, limit=100_000))


async def overshoots(store: MemoryStore, feeds: Sequence[str]) -> list[int]:
    return [max(0, await rows(store, feed) - MAX) for feed in feeds]


def assert_hash_rule_tail(samples: list[int]) -> None:
    """The README's bound where no process counts a feed's inserts: the inserts since its last trim
    are at least k * trim_every with probability at most e^-k, and trim_every - 1 on average."""
    assert samples
    for k in (1, 2, 3):
        share = sum(s >= k * EVERY for s in samples) / len(samples)
        assert share <= 1.25 * math.exp(-k), (k, share)
    assert sum(samples) / len(samples) <= EVERY - 1


async def test_one_writer_keeps_a_feed_within_max_length_plus_trim_every() -> None:
    store = Probe()
    writer = TimelineWriter(store, max_length=MAX, trim_every=EVERY)
    feed = "timeline:reader"
    n = 0
    for _ in range(200):
        n += 1
        await writer.write(inserts([feed], n))
        assert await rows(store, feed) <= MAX + EVERY - 1  # once the write (and its trims) returned
    # one call bringing 4 * trim_every inserts into the feed (a follow copy, a replayed batch)
    await writer.write([w for k in range(n + 1, n + 1 + 4 * EVERY) for w in inserts([feed], k)])
    assert await rows(store, feed) <= MAX + EVERY - 1
    assert store.peak[feed] <= MAX + EVERY  # never more, even inside a call
    assert [a.id for a in await store.read(feed, limit=MAX)] == [post(k).id for k in range(n + 4 * EVERY, n, -1)][:MAX]


async def test_four_writers_keep_every_feed_within_the_bound() -> None:
    store = Probe()
    writers = [TimelineWriter(store, max_length=MAX, trim_every=EVERY) for _ in range(4)]
    feeds = [f"timeline:u{i}" for i in range(300)]
    samples: list[int] = []
    for n in range(1, 41):
        for c in range(0, len(feeds), 50):  # chunks of 50 feeds, each to some writer
            chunk = feeds[c : c + 50]
            await writers[(n + c // 50) % 4].write(inserts(chunk, n))
            samples += await overshoots(store, chunk)
    assert max(store.peak.values()) <= MAX + 4 * EVERY  # the hard bound for 4 processes
    assert max(samples) <= 4 * (EVERY - 1)
    assert_hash_rule_tail(samples)  # and the hash rule keeps them near max_length, whoever writes


async def test_restarted_writers_keep_trimming() -> None:
    store = Probe()
    feeds = [f"timeline:u{i}" for i in range(300)]
    samples: list[int] = []
    calls = 0
    writer = TimelineWriter(store, max_length=MAX, trim_every=EVERY)
    for n in range(1, 41):
        for c in range(0, len(feeds), 50):
            if calls % 2 == 0:
                writer = TimelineWriter(store, max_length=MAX, trim_every=EVERY)  # a restart: counts lost
            calls += 1
            chunk = feeds[c : c + 50]
            await writer.write(inserts(chunk, n))
            samples += await overshoots(store, chunk)
    assert_hash_rule_tail(samples)


async def test_more_feeds_than_the_writer_tracks() -> None:
    """20,000 cold feeds pass through an LRU of 400 tracked feeds (50 times more feeds than it
    holds); hot feeds, written in every call, stay tracked and keep the exact bound; the cold ones
    follow the hash rule (benchmarks/trim_scale.py runs a million)."""
    cold = [f"timeline:cold{i}" for i in range(20_000)]
    hot = [f"timeline:hot{i}" for i in range(5)]
    store = Probe(watch=hot)
    writer = TimelineWriter(store, max_length=MAX, trim_every=EVERY, tracked_feeds=400)
    n = 0
    for _ in range(3 * MAX):
        for c in range(0, len(cold), 100):
            n += 1
            await writer.write(inserts([*hot, *cold[c : c + 100]], n))
            assert writer.tracked <= 400
            assert max(await overshoots(store, hot)) <= EVERY - 1
    assert all(store.peak[feed] <= MAX + EVERY for feed in hot)
    assert_hash_rule_tail(await overshoots(store, cold))


async def test_a_failed_trim_is_retried_on_the_next_insert() -> None:
    store = Probe()
    writer = TimelineWriter(store, max_length=MAX, trim_every=EVERY)
    feed = "timeline:reader"
    n = 0
    store.fail = 1
    failed = False
    while not failed:  # write until a trim is attempted, and fails
        n += 1
        try:
            await writer.write(inserts([feed], n))
        except StoreError:
            failed = True
    trims = store.trims
    n += 1
    await writer.write(inserts([feed], n))  # the very next insert retries it
    assert store.trims == trims + 1
    assert await rows(store, feed) <= MAX
    for _ in range(50):
        n += 1
        await writer.write(inserts([feed], n))
        assert await rows(store, feed) <= MAX + EVERY - 1
