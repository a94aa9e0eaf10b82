"""Prove that the local services are real servers speaking their real protocols.

Requires `make up` (scripts/services.sh up) first; see conftest.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

pytestmark = pytest.mark.integration


async def test_kafka_produce_consume_commit_round_trip(
    kafka_bootstrap: str, unique_name: Callable[[str], str]
) -> None:
    topic = unique_name("it_topic")
    group = unique_name("it_group")
    payloads = [f"event-{i}".encode() for i in range(5)]

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name=topic, num_partitions=1, replication_factor=1)])

        producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", enable_idempotence=True)
        await producer.start()
        try:
            offsets = []
            for i, value in enumerate(payloads):
                meta = await producer.send_and_wait(topic, value=value, key=f"user-{i % 2}".encode())
                offsets.append(meta.offset)
        finally:
            await producer.stop()
        assert offsets == list(range(len(payloads)))

        tp = TopicPartition(topic, 0)
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=group,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        try:
            received: list[Any] = []

            async def drain() -> None:
                while len(received) < len(payloads):
                    batches = await consumer.getmany(timeout_ms=500)
                    for messages in batches.values():
                        received.extend(messages)

            await asyncio.wait_for(drain(), timeout=30)
            assert [m.value for m in received] == payloads
            assert [m.offset for m in received] == offsets

            await consumer.commit()
            assert await consumer.committed(tp) == len(payloads)
        finally:
            await consumer.stop()

        # A new member of the same group reads the committed offset back from the broker.
        reader = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, group_id=group, enable_auto_commit=False)
        await reader.start()
        try:
            assert await reader.committed(tp) == len(payloads)
        finally:
            await reader.stop()
    finally:
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


def test_cassandra_prepared_insert_and_read_round_trip(
    cassandra_session: Any, unique_name: Callable[[str], str]
) -> None:
    session = cassandra_session
    release = session.execute("SELECT release_version FROM system.local").one().release_version
    assert release.startswith("5.0"), release

    keyspace = unique_name("it_ks")
    replication = "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    session.execute(f"CREATE KEYSPACE {keyspace} WITH replication = {replication}")
    try:
        session.execute(
            f"CREATE TABLE {keyspace}.feed_items ("
            " feed_id text, seq bigint, body text,"
            " PRIMARY KEY (feed_id, seq)) WITH CLUSTERING ORDER BY (seq DESC)"
        )
        insert = session.prepare(f"INSERT INTO {keyspace}.feed_items (feed_id, seq, body) VALUES (?, ?, ?)")
        for seq in range(3):
            session.execute(insert, ("alice", seq, f"post-{seq}"))
        session.execute(insert, ("bob", 7, "other feed"))

        select = session.prepare(f"SELECT seq, body FROM {keyspace}.feed_items WHERE feed_id = ?")
        rows = [(row.seq, row.body) for row in session.execute(select, ("alice",))]
        assert rows == [(2, "post-2"), (1, "post-1"), (0, "post-0")]
    finally:
        session.execute(f"DROP KEYSPACE IF EXISTS {keyspace}")

    remaining = session.execute(
        "SELECT keyspace_name FROM system_schema.keyspaces WHERE keyspace_name = %s", (keyspace,)
    ).one()
    assert remaining is None
