"""At-least-once under failure: a writer SIGKILLed mid-stream, and a store that fails.

Offsets are committed only after the store acknowledged the batch's rows, so a killed writer
(or one whose store fails) resumes from the last written batch, and the idempotent writes
leave every timeline exact: the expected entries, each once.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fanout.activity import Activity
from fanout.agents import group_id
from fanout.codec import ChunkMessage, encode
from fanout.errors import StoreError
from fanout.store import TimelineWrite
from tests.integration.pipeline_helpers import (
    InProcess,
    WorkerProcess,
    feed_ids,
    lags,
    pipeline,
    pipeline_settings,
    produce_raw,
    wait_drained,
    wait_for,
)

pytestmark = pytest.mark.integration

FOLLOWERS = 5000
ACTIVITIES = 20


async def _follow_many(store: Any, followee: str, followers: list[str]) -> None:
    sem = asyncio.Semaphore(256)

    async def one(follower: str) -> None:
        async with sem:
            await store.set_follow(follower, followee, True, 1)

    await asyncio.gather(*(one(f) for f in followers))


async def _check_feeds(store: Any, feeds: list[str], expected: list[str]) -> None:
    sem = asyncio.Semaphore(128)
    wrong: list[tuple[str, list[str]]] = []

    async def one(feed: str) -> None:
        async with sem:
            got = await feed_ids(store, feed)
        if got != expected:
            wrong.append((feed, got))

    await asyncio.gather(*(one(f) for f in feeds))
    assert not wrong, f"{len(wrong)} feeds differ, e.g. {wrong[:2]}"


async def test_sigkilled_writer_resumes_and_every_timeline_is_exact(capsys: pytest.CaptureFixture[str]) -> None:
    settings = pipeline_settings(batch_max_records=50, low_batch_max_records=50, low_partitions=2)
    low = group_id(settings.topic_prefix, "writer", "low")
    followers = [f"f{i:05d}" for i in range(FOLLOWERS)]
    t0 = datetime(2024, 3, 1, tzinfo=UTC)
    events = [
        {"actor": "star", "verb": "post", "object": f"p{i}", "id": f"star-{i}",
         "time": (t0 + timedelta(minutes=i)).isoformat()}
        for i in range(ACTIVITIES)
    ]
    expected = [e["id"] for e in reversed(events)]
    total_chunks = ACTIVITIES * FOLLOWERS // settings.chunk_size

    async with pipeline(settings) as store:
        await _follow_many(store, "star", followers)
        planner = InProcess(settings, store, "planner")
        writer = WorkerProcess(settings, "writer", "--priority", "low", "--instance-id", "kill-test-low",
                               name="writer-low-a")
        try:
            await produce_raw(settings, "activities", [(b"star", json.dumps(e).encode()) for e in events])

            async def some_landed() -> bool:
                committed, _ = (await lags(settings)).get(low, (0, 0))
                return committed >= 4 * settings.batch_max_records

            await wait_for(some_landed, 60, "the first committed writer batch", interval=0.05)
            writer.kill()
            committed, lag = (await lags(settings))[low]
            assert 0 < committed < total_chunks and lag > 0, (committed, lag)

            started = time.monotonic()
            writer = WorkerProcess(settings, "writer", "--priority", "low", "--instance-id", "kill-test-low",
                                   name="writer-low-b")
            await wait_drained(settings, roles=["planner", "writer-low"], within=120)
            elapsed = time.monotonic() - started
            assert await writer.terminate() == 0, writer.log()[-3000:]
        finally:
            await planner.close()
            if writer.proc.poll() is None:
                await writer.terminate()

        rows = (total_chunks - committed) * settings.chunk_size
        with capsys.disabled():
            print(f"\n[kill test] killed after {committed}/{total_chunks} chunks committed; restarted writer "
                  f"wrote {rows} rows in {elapsed:.1f}s incl. startup ({rows / elapsed:,.0f} rows/s)")
        assert (await lags(settings))[low] == (total_chunks, 0)
        await _check_feeds(store, [f"timeline:{f}" for f in followers], expected)
        assert await feed_ids(store, "user:star") == expected


class FlakyStore:
    """Delegates to a real store; ``apply`` call number N raises ``fail_at[N]`` instead. After a
    non-retriable error the store stays broken for reads too, as one whose schema is gone (a
    store that still answers reads would make the writer treat the error as a poison chunk)."""

    def __init__(self, inner: Any, fail_at: dict[int, StoreError]) -> None:
        self.inner = inner
        self.fail_at = fail_at
        self.calls = 0
        self.applied: list[int] = []
        self.broken: StoreError | None = None

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        self.calls += 1
        error = self.fail_at.get(self.calls)
        if error is not None:
            if not error.retriable:
                self.broken = error
            raise error
        await self.inner.apply(writes)
        self.applied.append(len(writes))

    async def read(self, feed: str, **options: Any) -> list[Activity]:
        if self.broken is not None:
            raise self.broken
        result: list[Activity] = await self.inner.read(feed, **options)
        return result

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_offsets_are_committed_only_after_the_store_acknowledged() -> None:
    # no trim falls due (trim_every huge): each batch is one store call, so the calls counted below
    # are whole batches (a trim splits a batch's writes into rounds)
    settings = pipeline_settings(batch_max_records=5, low_batch_max_records=5, low_partitions=2, trim_every=1 << 40)
    low = group_id(settings.topic_prefix, "writer", "low")
    feeds = [f"timeline:g{i}" for i in range(10)]
    activities = [
        Activity(id=f"x{i:02d}", actor=f"actor{i % 3}", verb="pin", object=f"o{i}", ts=1_700_000_000_000_000 + i)
        for i in range(40)
    ]
    chunks = [
        (a.actor.encode(), encode(ChunkMessage(op="add", priority="low", activity=a, feeds=feeds, write_ts=a.ts)))
        for a in activities
    ]
    async with pipeline(settings) as store:
        await produce_raw(settings, "low", chunks)
        flaky = FlakyStore(store, {
            2: StoreError("timeout (injected)", retriable=True),
            3: StoreError("timeout again (injected)", retriable=True),
            6: StoreError("schema gone (injected)", retriable=False),
        })
        failing = InProcess(settings, flaky, "writer", "low")
        with pytest.raises(StoreError, match="schema gone"):
            await asyncio.wait_for(failing.task, 60)

        written_chunks = sum(flaky.applied) // len(feeds)
        # calls 2 and 3 failed and were retried, call 6 stopped the worker; a batch of the other
        # partition already in flight may finish (and commit) within the grace period
        assert flaky.calls >= 6 and len(flaky.applied) == flaky.calls - 3
        committed, lag = (await lags(settings))[low]
        assert committed == written_chunks  # exactly the acknowledged batches, not the failed one
        assert lag == len(chunks) - written_chunks > 0
        assert len(await feed_ids(store, feeds[0])) == written_chunks

        restarted = InProcess(settings, store, "writer", "low")
        try:
            await wait_drained(settings, roles=["writer-low"], within=60)
        finally:
            await restarted.close()
        expected = [a.id for a in reversed(activities)]
        for feed in feeds:
            assert await feed_ids(store, feed) == expected
