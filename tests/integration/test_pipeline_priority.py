"""Priorities: a LOW backlog does not delay the feeds of active (HIGH) users."""

from __future__ import annotations

import json
import time

import pytest

from fanout.activity import Activity, now_micros
from fanout.agents import group_id
from fanout.agents.lag import consumer_lag
from fanout.codec import ChunkMessage, decode_chunk, encode
from tests.integration.pipeline_helpers import (
    InProcess,
    WorkerProcess,
    feed_ids,
    lags,
    pipeline,
    pipeline_settings,
    produce_raw,
    read_topic,
    wait_for,
)

pytestmark = pytest.mark.integration

BACKLOG_ACTIVITIES = 100
CHUNKS_PER_ACTIVITY = 10  # x 100 feeds = 100,000 LOW feed writes queued


async def test_high_follower_is_served_while_the_low_backlog_waits(capsys: pytest.CaptureFixture[str]) -> None:
    settings = pipeline_settings(batch_max_records=20, low_partitions=2)
    low = group_id(settings.topic_prefix, "writer", "low")
    async with pipeline(settings) as store:
        now = now_micros()
        until = now + 7 * 86_400 * 1_000_000
        await store.set_active("fan", until, now)
        await store.set_follow("fan", "hot", True, 1, until)  # an active follower: HIGH

        backlog = []
        for i in range(BACKLOG_ACTIVITIES):
            activity = Activity(id=f"cold-{i}", actor="cold", verb="post", object=f"c{i}", ts=now - 1000 + i)
            for c in range(CHUNKS_PER_ACTIVITY):
                feeds = [f"timeline:l{c * 100 + k}" for k in range(100)]
                message = ChunkMessage(op="add", priority="low", activity=activity, feeds=feeds, write_ts=activity.ts)
                backlog.append((feeds[0].encode(), encode(message)))
        await produce_raw(settings, "low", backlog)

        planner = InProcess(settings, store, "planner")
        high = InProcess(settings, store, "writer", "high")
        await planner.ready()
        await high.ready()
        writer = WorkerProcess(settings, "writer", "--priority", "low")
        try:

            async def low_busy() -> bool:
                return (await lags(settings)).get(low, (0, 0))[0] > 0

            await wait_for(low_busy, 60, "the low writer's first batch", interval=0.05)
            sent = time.monotonic()
            event = {"actor": "hot", "verb": "post", "object": "news", "id": "hot-1"}
            await produce_raw(settings, "activities", [(b"hot", json.dumps(event).encode())])

            async def arrived() -> bool:
                return await feed_ids(store, "timeline:fan") == ["hot-1"]

            latency = await wait_for(arrived, 30, "the HIGH follower's feed", interval=0.02)
            committed, lag = (await lags(settings))[low]
            with capsys.disabled():
                print(f"\n[priority] HIGH feed updated {time.monotonic() - sent:.2f}s after produce; "
                      f"LOW backlog still {lag} chunks ({lag * 100} rows) behind, {committed} done")
            assert lag > 0, "the LOW backlog drained first: the test proves nothing"
            assert latency < 5.0

            # SIGTERM while the low writer is busy: it exits quickly and cleanly, and every chunk
            # below its committed offsets is in the store (commits only follow acknowledged writes).
            stopping = time.monotonic()
            assert await writer.terminate(within=12) == 0, writer.log()[-3000:]
            assert time.monotonic() - stopping < 10
            committed_at = {row.partition: row.committed or 0 for row in await consumer_lag(settings)
                            if row.group == low}
            assert 0 < sum(committed_at.values()) < len(backlog)
            checked = 0
            for record in await read_topic(settings, "low", expected=len(backlog)):
                if record.offset < committed_at[record.partition]:
                    chunk = decode_chunk(record.value)
                    for feed in (chunk.feeds[0], chunk.feeds[-1]):
                        assert chunk.activity.id in await feed_ids(store, feed), (record.partition, record.offset)
                    checked += 1
            assert checked == sum(committed_at.values())
        finally:
            if writer.proc.poll() is None:
                await writer.terminate()
            await planner.close()
            await high.close()
