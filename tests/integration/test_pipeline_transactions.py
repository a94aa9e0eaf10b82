"""Events a service produced in a Kafka transaction it then aborted never reach a feed, on the
live path and on replay (consumers read committed records only; Java and Go services with
exactly-once producers write such transactions)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from fanout.settings import Settings
from tests.integration.pipeline_helpers import all_agents, feed_ids, pipeline, pipeline_settings, wait_drained
from tests.integration.replay_helpers import run

pytestmark = pytest.mark.integration


async def in_transaction(settings: Settings, records: list[tuple[str, str, dict[str, Any]]], *, commit: bool) -> None:
    """(topic, key, event) records in one transaction, committed or aborted."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap,
                                transactional_id=f"{settings.topic_prefix}tx")
    await producer.start()
    try:
        await producer.begin_transaction()
        for topic, key, event in records:
            await producer.send_and_wait(settings.topic(topic), value=json.dumps(event).encode(), key=key.encode())
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


def post(n: int) -> tuple[str, str, dict[str, Any]]:
    return "activities", "ann", {"actor": "ann", "verb": "pin", "object": f"o{n}", "id": f"p{n}"}


async def test_an_aborted_transaction_reaches_no_feed() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        await store.set_follow("fan", "ann", True, 1)
        await in_transaction(settings, [post(1), ("follows", "bob", {"follower": "bob", "followee": "ann"})],
                             commit=False)
        await in_transaction(settings, [post(2)], commit=True)
        await in_transaction(settings, [post(3), ("follows", "cat", {"follower": "cat", "followee": "ann"})],
                             commit=False)
        async with all_agents(settings, store):
            await wait_drained(settings, within=60)
        assert await feed_ids(store, "user:ann") == ["p2"]
        assert await feed_ids(store, "timeline:fan") == ["p2"]
        assert await feed_ids(store, "timeline:bob") == []  # an aborted follow copies nothing in
        assert await feed_ids(store, "timeline:cat") == []

        await store.drop_timelines()  # replaying the topics rebuilds the same feeds
        summary = await run(settings, store)
        assert (summary.activities, summary.follows) == (1, 0)
        for feed, want in (("user:ann", ["p2"]), ("timeline:fan", ["p2"]), ("timeline:bob", []),
                           ("timeline:cat", [])):
            assert await feed_ids(store, feed) == want, feed
