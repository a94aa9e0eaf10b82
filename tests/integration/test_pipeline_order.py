"""The pipeline's agents on the real broker and node: removes win across partitions (issue 11.1)
and follows are ordered by the follower's partition (issues 10.2, 10.3)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from fanout.settings import Settings
from tests.contract.history import home_partition, other_key
from tests.integration.pipeline_helpers import InProcess, feed_ids, pipeline, pipeline_settings, wait_drained

pytestmark = pytest.mark.integration

T = 1_704_067_200_000  # 2024-01-01T00:00:00Z in epoch milliseconds


Record = tuple[str, dict[str, Any], int, int | None]


async def produce(settings: Settings, topic: str, records: list[Record]) -> None:
    """(key, event, partition, record timestamp in ms or None for now), in order, acknowledged."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        sent = [await producer.send(settings.topic(topic), value=json.dumps(event).encode(), key=key.encode(),
                                    partition=partition, timestamp_ms=ts) for key, event, partition, ts in records]
        await asyncio.gather(*sent)
    finally:
        await producer.stop()


async def test_adds_and_their_removes_on_other_partitions_of_one_batch_end_removed() -> None:
    """Issue 11.1a: an add and its remove (by id, produced under another key) in different partitions
    of one planner batch are planned concurrently; every pair must end removed."""
    settings = pipeline_settings(batch_max_records=500)
    parts = settings.activities_partitions
    home = home_partition("ann", parts)
    elsewhere = (home + 1) % parts
    adds: list[Record] = []
    removes: list[Record] = []
    for i in range(40):
        adds.append(("ann", {"actor": "ann", "verb": "pin", "object": f"o{i}", "id": f"x{i}"}, home, None))
        removes.append(("ann-rm", {"actor": "ann", "verb": "remove", "object": f"x{i}", "id": f"x{i}", "op": "remove"},
                        elsewhere, None))
    async with pipeline(settings) as store:
        for fan in ("f0", "f1"):
            await store.set_follow(fan, "ann", True, 1)
        await produce(settings, "activities", adds + removes)  # all waiting before the planner starts
        agents = [InProcess(settings, store, "planner"), InProcess(settings, store, "writer", "high"),
                  InProcess(settings, store, "writer", "low")]
        try:
            await wait_drained(settings, within=90, roles=["planner", "writer-high", "writer-low"])
        finally:
            for agent in agents:
                await agent.close()
        for feed in ("timeline:f0", "timeline:f1", "user:ann"):
            assert await feed_ids(store, feed) == [], feed


async def test_the_follows_agent_orders_a_follower_by_its_partition() -> None:
    """Follow at t+1, post, unfollow at t+3, post, then a follow at t+2 arriving last: in the
    follower's partition it wins (skewed clocks do not matter); produced under another key
    (another partition) it loses and copies nothing."""
    settings = pipeline_settings(follows_partitions=2)
    parts = settings.follows_partitions

    def follow(follower: str, ts: int, op: str = "follow", key: str | None = None) -> Record:
        key = key or follower
        return key, {"follower": follower, "followee": "ann", "op": op}, home_partition(key, parts), ts

    def post(n: int) -> Record:
        return "ann", {"actor": "ann", "verb": "pin", "object": f"o{n}", "id": f"p{n}"}, 0, None

    steps: list[tuple[str, list[Record]]] = [
        ("follows", [follow("kept", T + 1000), follow("lost", T + 1000)]),
        ("activities", [post(1)]),
        ("follows", [follow("kept", T + 3000, "unfollow"), follow("lost", T + 3000, "unfollow")]),
        ("activities", [post(2)]),
        ("follows", [follow("kept", T + 2000), follow("lost", T + 2000, key=other_key("lost", parts))]),
    ]
    async with pipeline(settings) as store:
        agents = [InProcess(settings, store, role, priority) for role, priority in
                  (("planner", None), ("follows", None), ("writer", "high"), ("writer", "low"))]
        try:
            for topic, records in steps:
                await produce(settings, topic, records)
                await wait_drained(settings, within=60)
        finally:
            for agent in agents:
                await agent.close()
        assert await store.following("kept") == ["ann"]
        assert await feed_ids(store, "timeline:kept") == ["p2", "p1"]
        assert await store.following("lost") == []
        assert await feed_ids(store, "timeline:lost") == []


async def test_follows_keyed_by_the_follower_keep_their_order_in_any_clients_partition() -> None:
    """kcat and every librdkafka client hash a key with CRC32, Sarama with FNV-1a: a follower's
    events, keyed as documented, land together in another partition than Java's murmur2 gives.
    In one millisecond, follow then unfollow must end unfollowed, and unfollow then follow followed
    (the follows agent took them for another key's events and kept the first of each pair)."""
    settings = pipeline_settings(follows_partitions=3)
    parts = settings.follows_partitions

    def event(follower: str, op: str) -> Record:
        elsewhere = (home_partition(follower, parts) + 1) % parts  # where another client's hash put it
        return follower, {"follower": follower, "followee": "ann", "op": op}, elsewhere, T + 1000

    post: Record = ("ann", {"actor": "ann", "verb": "pin", "object": "o1", "id": "p1"}, 0, None)
    async with pipeline(settings) as store:
        agents = [InProcess(settings, store, role, priority) for role, priority in
                  (("planner", None), ("follows", None), ("writer", "high"), ("writer", "low"))]
        try:
            await produce(settings, "activities", [post])
            await wait_drained(settings, within=60)
            await produce(settings, "follows", [event("gone", "follow"), event("gone", "unfollow"),
                                                event("back", "unfollow"), event("back", "follow")])
            await wait_drained(settings, within=60)
        finally:
            for agent in agents:
                await agent.close()
        assert await store.following("gone") == []
        assert await feed_ids(store, "timeline:gone") == []
        assert await store.following("back") == ["ann"]
        assert await feed_ids(store, "timeline:back") == ["p1"]
