"""After a batch's rows, a writer reads the registry and writes the chunks' landing traces at
once (``TimelineWriter.write_chunks``): one round trip less before each commit, at the latency of
a busy node. A failure of either is raised once both settled; a removed activity's rows are
still written again as removes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from fanout import MemoryStore, StoreError
from fanout.activity import Activity
from fanout.codec import ChunkMessage
from fanout.store import RegistryEntry, TimelineWrite
from fanout.tracing import ChunkLanded
from fanout.writer import TimelineWriter

T0 = 1_700_000_000_000_000


class Meeting:
    """A network store's view of a MemoryStore (no column fast path): the registry read and
    the landing write each wait, up to a second, until the other one has started too."""

    def __init__(self, fail_landing: bool = False) -> None:
        self.inner = MemoryStore()
        self.started: set[str] = set()
        self.finished: set[str] = set()
        self.both = asyncio.Event()
        self.fail_landing = fail_landing

    async def _meet(self, name: str) -> None:
        self.started.add(name)
        if len(self.started) == 2:
            self.both.set()
        await asyncio.wait_for(self.both.wait(), 1.0)

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        await self.inner.apply(writes)

    async def trim(self, feed: str, max_length: int) -> int:
        return await self.inner.trim(feed, max_length)

    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        await self._meet("registry")
        for _ in range(3):
            await asyncio.sleep(0)
        self.finished.add("registry")
        return await self.inner.get_activity(activity_id)

    async def record_landed(self, landed: Sequence[ChunkLanded]) -> None:
        await self._meet("landing")
        if self.fail_landing:
            raise StoreError("timeout", retriable=True)
        await self.inner.record_landed(landed)


def chunk(activity: Activity) -> ChunkMessage:
    return ChunkMessage(op="add", priority="high", activity=activity, feeds=["timeline:u1", "timeline:u2"],
                        write_ts=activity.ts)


async def test_the_registry_read_and_the_landing_traces_are_in_flight_together() -> None:
    store = Meeting()
    activity = Activity(id="a1", actor="x", verb="v", object="o", ts=T0)
    await store.inner.put_activity(activity)
    await store.inner.mark_removed("a1")  # removed while the add was on its way
    writer = TimelineWriter(store, max_length=10, trim_every=5)  # type: ignore[arg-type]
    assert await writer.write_chunks([chunk(activity)]) == 4  # two rows, then their removes
    assert store.both.is_set()  # one after the other, the first would have waited out its second
    assert await store.inner.read("timeline:u1", limit=5) == []


async def test_a_failed_landing_is_raised_after_the_removes_are_written() -> None:
    """Tracing never holds back a remove: with the add's activity removed meanwhile, the rows are
    written again as removes before the trace write's failure is raised."""
    store = Meeting(fail_landing=True)
    activity = Activity(id="a1", actor="x", verb="v", object="o", ts=T0)
    await store.inner.put_activity(activity)
    await store.inner.mark_removed("a1")
    writer = TimelineWriter(store, max_length=10, trim_every=5)  # type: ignore[arg-type]
    with pytest.raises(StoreError):
        await writer.write_chunks([chunk(activity)])
    assert store.finished == {"registry"}  # not left running
    assert await store.inner.read("timeline:u1", limit=5) == []
