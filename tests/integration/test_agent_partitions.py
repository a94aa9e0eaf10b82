"""Issue 10 item 6: one slow or failing partition holds neither the other partitions nor the group.

Each partition is processed by its own in-order task and committed as soon as ITS records are
written and acknowledged; a retriable store error is retried a bounded number of times, then the
partition is sought back and re-fetched later, so a rebalance never waits for it. Offsets are
never committed past a record whose writes were not acknowledged (checked continuously here).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from typing import Any

import pytest

from fanout.activity import Activity
from fanout.agents import group_id
from fanout.codec import ChunkMessage, encode
from fanout.errors import StoreError
from fanout.settings import Settings
from fanout.store import RegistryEntry, TimelineWrite
from tests.integration.pipeline_helpers import (
    InProcess,
    committed_offsets,
    feed_ids,
    pipeline,
    pipeline_settings,
    produce_to,
    wait_drained,
    wait_for,
)

pytestmark = pytest.mark.integration

T0 = 1_700_000_000_000_000


def _chunk(activity_id: str, feeds: list[str], ts: int) -> bytes:
    activity = Activity(id=activity_id, actor="ann", verb="pin", object=activity_id, ts=ts)
    return encode(ChunkMessage(op="add", priority="low", activity=activity, feeds=feeds, write_ts=ts))


class GatedStore:
    """Delegates to a real store; writes of activities whose id starts with ``bad`` fail with a
    retriable ``StoreError`` until ``heal()``; records every activity id whose write was acknowledged."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.healed = asyncio.Event()
        self.failures = 0
        self.written: set[str] = set()

    def heal(self) -> None:
        self.healed.set()

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        if not self.healed.is_set() and any(w.activity.id.startswith("bad") for w in writes):
            self.failures += 1
            raise StoreError("write timeout (injected)", retriable=True)
        await self.inner.apply(writes)
        self.written.update(w.activity.id for w in writes)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def _never_past_unwritten(
    settings: Settings, group: str, store: GatedStore, ids_at: dict[int, list[str]], stop: asyncio.Event
) -> tuple[int, int]:
    """Until ``stop``, and once more after it: every committed offset covers only records whose
    writes were acknowledged. Returns the observations made before and after the store healed."""
    before = after = 0
    while True:
        healed = store.healed.is_set()
        for partition, offset in (await committed_offsets(settings, group)).items():
            covered = ids_at.get(partition, [])[: offset or 0]
            unwritten = [i for i in covered if i not in store.written]
            assert not unwritten, f"partition {partition} committed at {offset} past unwritten {unwritten}"
        before, after = (before, after + 1) if healed else (before + 1, after)
        if stop.is_set():
            return before, after
        await asyncio.sleep(0.05)


async def test_a_failing_partition_holds_neither_other_partitions_nor_a_rebalance() -> None:
    settings = pipeline_settings(low_partitions=2, batch_max_records=10, low_batch_max_records=10)
    group = group_id(settings.topic_prefix, "writer", "low")
    feeds = [f"timeline:w{i}" for i in range(3)]
    # partition 0: the bad records first (they fail until healed), then good ones behind them;
    # partition 1: good records only.
    ids_at = {0: [f"bad-{i}" for i in range(3)] + [f"p0-{i}" for i in range(5)], 1: [f"p1-{i}" for i in range(20)]}
    async with pipeline(settings) as real:
        store = GatedStore(real)

        async def produce(partition: int) -> None:
            ids = ids_at[partition]
            await produce_to(settings, "low", partition,
                             [(i.encode(), _chunk(i, feeds, T0 + n)) for n, i in enumerate(ids)])

        await produce(0)
        stop_watch = asyncio.Event()
        watch = asyncio.ensure_future(_never_past_unwritten(settings, group, store, ids_at, stop_watch))
        first = InProcess(settings, store, "writer", "low", grace_seconds=2.0)
        second: InProcess | None = None
        try:
            await first.ready()

            async def failing() -> bool:
                return store.failures > 0

            await wait_for(failing, 30, "the first failed write of partition 0")
            await produce(1)  # produced while partition 0 keeps failing

            async def partition_1_committed() -> bool:
                return (await committed_offsets(settings, group)).get(1) == len(ids_at[1])

            await wait_for(partition_1_committed, 30, "partition 1 committed while partition 0 fails")
            assert store.failures > 0
            assert (await committed_offsets(settings, group)).get(0) in (None, 0)

            # A new member joins: the rebalance must not wait for the failing partition.
            started = time.monotonic()
            second = InProcess(settings, store, "writer", "low", grace_seconds=2.0)
            await second.ready(within=30)
            joined_in = time.monotonic() - started
            assert joined_in < 20, f"the rebalance took {joined_in:.1f}s"
            assert (await committed_offsets(settings, group)).get(0) in (None, 0)

            store.heal()
            await wait_drained(settings, roles=["writer-low"], within=60)
        finally:
            stop_watch.set()
            before_heal, after_heal = await watch
            await first.close()
            if second is not None:
                await second.close()
        # The watch saw the failing phase (partition 1 committing past partition 0's failures)
        # and the end state; each observation reads the group's offsets from the broker.
        assert before_heal >= 2 and after_heal >= 1, (before_heal, after_heal)
        assert await committed_offsets(settings, group) == {0: len(ids_at[0]), 1: len(ids_at[1])}
        every = sorted(i for ids in ids_at.values() for i in ids)
        for feed in feeds:
            assert sorted(await feed_ids(real, feed)) == every


class SlowStore:
    """Delegates to a real store; looking up an activity whose id starts with ``slow`` blocks
    until ``release()`` (the planner's first step of that activity)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.released = asyncio.Event()
        self.blocked = asyncio.Event()

    def release(self) -> None:
        self.released.set()

    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        if activity_id.startswith("slow"):
            self.blocked.set()
            await self.released.wait()
        entry: RegistryEntry | None = await self.inner.get_activity(activity_id)
        return entry

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_slow_activity_does_not_hold_the_commits_of_other_partitions() -> None:
    settings = pipeline_settings(activities_partitions=3)
    group = group_id(settings.topic_prefix, "planner")

    def event(activity_id: str, actor: str) -> bytes:
        return json.dumps({"actor": actor, "verb": "post", "object": activity_id, "id": activity_id,
                           "time": "2024-01-01T00:00:00Z"}).encode()

    async with pipeline(settings) as real:
        store = SlowStore(real)
        await produce_to(settings, "activities", 0,
                         [(b"star", event("slow-1", "star")), (b"star", event("after-slow", "star"))])
        await produce_to(settings, "activities", 1, [(b"ann", event(f"ann-{i}", "ann")) for i in range(5)])
        await produce_to(settings, "activities", 2, [(b"bob", event(f"bob-{i}", "bob")) for i in range(5)])
        planner = InProcess(settings, store, "planner")
        try:
            await asyncio.wait_for(store.blocked.wait(), 30)

            async def others_committed() -> bool:
                offsets = await committed_offsets(settings, group)
                return offsets.get(1) == 5 and offsets.get(2) == 5

            await wait_for(others_committed, 30, "partitions 1 and 2 committed while partition 0 is slow")
            assert (await committed_offsets(settings, group)).get(0) in (None, 0)
            assert await feed_ids(real, "user:ann") == [f"ann-{i}" for i in reversed(range(5))]
            assert await feed_ids(real, "user:star") == []

            store.release()
            await wait_drained(settings, roles=["planner"], within=60)
        finally:
            store.release()
            await planner.close()
        assert (await committed_offsets(settings, group)).get(0) == 2
        assert sorted(await feed_ids(real, "user:star")) == ["after-slow", "slow-1"]
