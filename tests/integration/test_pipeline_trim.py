"""Trimming on the real broker and node: several writers of both priorities and a writer restart
keep a busy feed within the bound README.md states ("Trimming: the bounds")."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from fanout.activity import now_micros
from fanout.cassandra import CassandraStore
from tests.integration.pipeline_helpers import (
    InProcess,
    feed_ids,
    pipeline,
    pipeline_settings,
    produce_raw,
    wait_drained,
)

pytestmark = pytest.mark.integration

MAX_LENGTH, TRIM_EVERY = 20, 5
AUTHORS, POSTS = 40, 10  # 400 inserts into the reader's feed: 20 x max_length
FEED = "timeline:reader"


async def _graph(store: CassandraStore) -> None:
    """The reader follows every author: HIGH for half of them, LOW for the others. Each author has
    a follower of their own that sorts before the reader and shares the reader's priority, so the
    reader's chunks are keyed by that follower (chunk key = first feed) and spread over every
    partition, hence every writer."""
    until = now_micros() + 7 * 86_400 * 1_000_000
    for a in range(AUTHORS):
        active = until if a % 2 == 0 else 0
        await store.set_follow("reader", f"author{a:02d}", True, 1, active)
        await store.set_follow(f"fan{a:02d}", f"author{a:02d}", True, 1, active)


def _posts(first: int, last: int) -> list[tuple[bytes, bytes]]:
    records = []
    for p in range(first, last):
        for a in range(AUTHORS):
            n = p * AUTHORS + a
            event = {"actor": f"author{a:02d}", "verb": "post", "object": f"o{n}", "id": f"post-{n:04d}",
                     "time": f"2026-01-01T{n // 3600:02d}:{n // 60 % 60:02d}:{n % 60:02d}Z"}
            records.append((event["actor"].encode(), json.dumps(event).encode()))
    return records


async def test_a_busy_feed_stays_within_the_bound_with_six_writers_and_a_restart(
    capsys: pytest.CaptureFixture[str],
) -> None:
    settings = pipeline_settings(max_length=MAX_LENGTH, trim_every=TRIM_EVERY, batch_max_records=10)
    writers = 4 + 2 + 1  # high, low, and the restarted high writer: every process that writes the feed
    bound = MAX_LENGTH + writers * TRIM_EVERY
    async with pipeline(settings) as store:
        await _graph(store)
        count = store.session.prepare(f"SELECT COUNT(*) FROM {store.keyspace}.timeline WHERE feed = ?")
        samples: list[int] = []
        sampling = True

        async def sample() -> None:
            while sampling:
                rows: list[Any] = await store._fetch_all(count.bind((FEED,)), "count")
                samples.append(int(rows[0][0]))
                await asyncio.sleep(0.01)

        # static members (instance ids): the restarted writer takes its predecessor's partitions
        # back without a rebalance of the group, as a restarted pod would
        agents = [InProcess(settings, store, "planner")]
        agents += [InProcess(settings, store, "writer", "high", instance_id=f"high-{i}") for i in range(4)]
        agents += [InProcess(settings, store, "writer", "low", instance_id=f"low-{i}") for i in range(2)]
        sampler = asyncio.ensure_future(sample())
        try:
            for agent in agents:
                await agent.ready()
            await produce_raw(settings, "activities", _posts(0, POSTS // 2))
            await asyncio.sleep(1.0)
            restarted = agents.pop(1)  # a high writer stops in the middle of the stream ...
            await restarted.close()
            await produce_raw(settings, "activities", _posts(POSTS // 2, POSTS))
            agents.append(InProcess(settings, store, "writer", "high", instance_id="high-0"))  # ... and restarts
            await agents[-1].ready()
            await wait_drained(settings, within=300, roles=["planner", "writer-high", "writer-low"])
        finally:
            sampling = False
            await sampler
            for agent in agents:
                await agent.close()

        rows_written = {id(a): a.agent.rows_written for a in agents if hasattr(a.agent, "rows_written")}
        final = samples[-1]
        with capsys.disabled():
            print(f"\n[trim] {AUTHORS * POSTS} inserts into one feed (max_length {MAX_LENGTH}, trim_every "
                  f"{TRIM_EVERY}) by {len(rows_written)} live writers + 1 restarted: {len(samples)} samples, "
                  f"most rows {max(samples)}, final {final}, bound {bound}")
        assert len(samples) > 20
        assert max(samples) <= bound
        assert final <= MAX_LENGTH + writers * (TRIM_EVERY - 1)
        newest = [f"post-{n:04d}" for n in range(AUTHORS * POSTS - 1, AUTHORS * POSTS - 1 - MAX_LENGTH, -1)]
        assert (await feed_ids(store, FEED))[:MAX_LENGTH] == newest
