"""The eager mode's fast path (``MemoryStore.apply_feeds``, ``priority_pages``, the writer's column
rounds) ends in exactly the state the row-by-row path (``TimelineWrite``, ``followers``) ends in."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Sequence

import pytest

from fanout import MemoryStore
from fanout.activity import REMOVED_WRITE_TS, Activity
from fanout.codec import ChunkMessage
from fanout.followers import ActiveWindowPolicy, FollowerPage
from fanout.store import FollowerRow, RegistryEntry, TimelineWrite, class_defines
from fanout.tracing import ChunkLanded
from fanout.writer import TimelineWriter

T0 = 1_700_000_000_000_000


class RowByRow:
    """A MemoryStore seen only through the ``Store`` methods the writer and the policy call."""

    def __init__(self) -> None:
        self.inner = MemoryStore()

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        await self.inner.apply(writes)

    async def trim(self, feed: str, max_length: int) -> int:
        return await self.inner.trim(feed, max_length)

    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        return await self.inner.get_activity(activity_id)

    def followers(self, followee: str, *, page_size: int) -> AsyncIterator[list[FollowerRow]]:
        return self.inner.followers(followee, page_size=page_size)

    async def record_landed(self, landed: Sequence[ChunkLanded]) -> None:
        await self.inner.record_landed(landed)


async def state(store: MemoryStore) -> dict[str, list[tuple[str, int]]]:
    """Every feed's live entries (id, write time), deletes included as write times."""
    return {
        feed: sorted((activity_id, cell[0]) for activity_id, cell in s.cells.items())
        for feed, s in store._feeds.items()
    } | {"_footprint": [(str(store.footprint()), 0)]}


async def _trim_full(store: MemoryStore, feeds: Sequence[str], max_length: int, trim_every: int) -> None:
    """The reference of the fast path's trims: a feed at ``max_length + trim_every`` live rows
    after a chunk is trimmed to ``max_length``."""
    for feed in dict.fromkeys(feeds):
        if store._feeds[feed].live_count >= max_length + trim_every:
            await store.trim(feed, max_length)


@pytest.mark.parametrize("seed", range(12))
async def test_chunks_leave_the_same_state_as_row_by_row_writes(seed: int) -> None:
    """The same rows as row by row, and the trims of a store that knows its feeds' lengths: a feed
    reaching ``max_length + trim_every`` rows is trimmed (the row-by-row path counts and hashes)."""
    rng = random.Random(seed)
    fast, slow = MemoryStore(), RowByRow()
    assert class_defines(fast, "apply_feeds") and not class_defines(slow, "apply_feeds")
    max_length, trim_every = 4, 3
    writer = TimelineWriter(fast, max_length=max_length, trim_every=trim_every)
    feeds = [f"timeline:u{i}" for i in range(10)]
    written = 0
    for _ in range(200):
        activity = Activity(id=f"a{rng.randint(0, 60)}", actor="x", verb="v", object="o", ts=T0 + rng.randint(0, 99))
        chosen = rng.sample(feeds, rng.randint(1, 6))
        if rng.random() < 0.1:
            chosen = chosen + chosen[:2]  # a feed twice in one chunk
        remove = rng.random() < 0.15
        write_ts = REMOVED_WRITE_TS if remove else activity.ts + rng.choice([0, 0, 1])
        chunk = ChunkMessage(op="remove" if remove else "add", priority="high", activity=activity,
                             feeds=chosen, write_ts=write_ts)
        if rng.random() < 0.05:
            for store in (fast, slow.inner):
                await store.clear_feed(chosen[0], T0 + 50)
        assert await writer.write_chunks([chunk]) == len(chosen)
        written += len(chosen)
        await slow.apply([TimelineWrite(feed, activity, write_ts, remove) for feed in chosen])
        if not remove:
            await _trim_full(slow.inner, chosen, max_length, trim_every)
        assert max(s.live_count for s in fast._feeds.values()) < max_length + trim_every
    assert await state(fast) == await state(slow.inner)
    assert writer.rows_written == written
    assert writer.tracked == 0  # nothing counted


async def test_the_fast_path_trims_once_per_trim_every_inserts_past_max_length() -> None:
    trims: list[str] = []

    class Counting(MemoryStore):
        async def trim(self, feed: str, max_length: int) -> int:
            trims.append(feed)
            return await super().trim(feed, max_length)

    store = Counting()
    writer = TimelineWriter(store, max_length=10, trim_every=5)
    for n in range(1000):
        activity = Activity(id=f"a{n}", actor="x", verb="v", object="o", ts=T0 + n)
        await writer.write_chunks([ChunkMessage(op="add", priority="low", activity=activity,
                                                feeds=["timeline:1", "timeline:2"], write_ts=activity.ts)])
        assert store._feeds["timeline:1"].live_count <= 14  # max_length + trim_every - 1 once the call returned
    assert len(trims) == 2 * ((1000 - 10) // 5)  # 990 inserts past max_length, a trim per 5
    assert [a.id for a in await store.read("timeline:2", limit=3)] == ["a999", "a998", "a997"]


async def test_a_subclass_that_overrides_apply_still_sees_every_write() -> None:
    seen: list[TimelineWrite] = []

    class Watching(MemoryStore):
        async def apply(self, writes: Sequence[TimelineWrite]) -> None:
            seen.extend(writes)
            await super().apply(writes)

    activity = Activity(id="a1", actor="x", verb="v", object="o", ts=T0)
    store = Watching()
    await store.apply_feeds(["timeline:1", "timeline:2"], activity, T0, False)
    assert seen == [TimelineWrite("timeline:1", activity, T0), TimelineWrite("timeline:2", activity, T0)]
    assert [a.id for a in await store.read("timeline:2", limit=5)] == ["a1"]


async def test_priority_pages_match_the_split_of_followers_pages() -> None:
    rng = random.Random(3)
    fast, slow = MemoryStore(), RowByRow()
    assert class_defines(fast, "priority_pages") and not class_defines(slow, "priority_pages")
    for store in (fast, slow.inner):
        r = random.Random(5)
        for i in range(700):
            await store.set_follow(f"u{i}", "star", r.random() < 0.9, T0 + r.randint(0, 9), r.choice([0, T0 + 5]))
        for i in range(0, 700, 7):
            await store.set_active(f"u{i}", T0 + 20, T0)
    now = T0 + rng.randint(0, 30)

    async def pages(store: object) -> list[FollowerPage]:
        return [page async for page in ActiveWindowPolicy(store, page_size=64).pages("star", now)]  # type: ignore[arg-type]

    assert await pages(fast) == await pages(slow)
    assert len(await pages(fast)) > 10
