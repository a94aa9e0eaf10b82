"""Issue 10 item 7: no history re-fanned or lost by Kafka defaults.

Topics are never auto-created (the project's broker turns it off, and producers check before they
send: the shared test broker may still have it on), ``topics check`` names every drift from the
settings, ``topics create`` pins every agent group at the start of the topics it creates, and an
agent whose group has no committed offset on a non-empty partition refuses to start unless told
where to start (``--from earliest|latest``).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from typing import Any

import pytest
from aiokafka.admin import NewPartitions, NewTopic

from fanout.agents import group_id
from fanout.agents.supervisor import settings_env
from fanout.agents.topics import MissingTopics, delete_topics
from fanout.kafka import KafkaClients
from fanout.producer import Producer, SyncProducer
from fanout.settings import Settings
from tests.integration.pipeline_helpers import (
    InProcess,
    committed_offsets,
    feed_ids,
    pipeline,
    pipeline_settings,
    produce_raw,
    produce_to,
    wait_drained,
)

pytestmark = pytest.mark.integration


def _cli(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run([sys.executable, "-m", "fanout", *args], env=env, capture_output=True, text=True,
                          timeout=120, check=False)


async def _topic_names(settings: Settings) -> list[str]:
    async with KafkaClients(settings).admin() as admin:
        return [t for t in await admin.list_topics() if t.startswith(settings.topic_prefix)]


async def test_producers_refuse_missing_topics_and_create_none() -> None:
    settings = pipeline_settings()  # a prefix nobody created topics for (a typo, or before `topics create`)
    with pytest.raises(MissingTopics, match="fanout topics create"):
        async with Producer(settings) as producer:
            await producer.send_activity(actor="ann", verb="pin", object="o1", id="x1")
    with pytest.raises(MissingTopics, match="fanout topics create"):
        await asyncio.to_thread(SyncProducer, settings)
    done = await asyncio.to_thread(_cli, settings, "publish", "--actor", "ann", "--verb", "pin", "--object", "o",
                                   "--id", "x2")
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "fanout topics create" in done.stderr, done.stderr
    for lag in (["lag"], ["lag", "--json"]):  # lag said so but exited 0, as if the pipeline were idle
        done = await asyncio.to_thread(_cli, settings, *lag)
        assert done.returncode == 2, (lag, done.stdout, done.stderr)
        assert done.stderr.strip().splitlines() == ["fanout: no pipeline topics found: run `fanout topics create`"]
    assert await _topic_names(settings) == []  # nothing was auto-created


async def test_topics_check_and_create_name_every_drift() -> None:
    settings = pipeline_settings()
    # What an auto-created topic looks like: 1 partition, the broker's defaults.
    async with KafkaClients(settings).admin() as admin:
        await admin.create_topics([NewTopic(settings.topic("activities"), 1, 1)])
    try:
        created = await asyncio.to_thread(_cli, settings, "topics", "create")
        assert created.returncode == 1, created.stdout + created.stderr
        line = next(x for x in created.stdout.splitlines() if settings.topic("activities") in x)
        assert "1 partitions" in line and "differs" in line, created.stdout
        checked = await asyncio.to_thread(_cli, settings, "topics", "check")
        assert checked.returncode == 1, checked.stdout + checked.stderr
        out = checked.stdout
        activities = settings.topic("activities")
        assert f"{activities}: 1 partitions, expected {settings.activities_partitions}" in out, out
        assert f"{activities}: retention.ms is 604800000, expected -1" in out, out
        assert f"{activities}: compression.type is producer, expected zstd" in out, out
        assert f"{activities}: message.timestamp.after.max.ms is 3600000, expected 600000" in out, out
        for name in ("follows", "high", "low", "dead"):
            assert settings.topic(name) + ":" not in out, out  # created right: no drift
    finally:
        await delete_topics(settings)

    async with pipeline(settings):
        checked = await asyncio.to_thread(_cli, settings, "topics", "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr


async def test_chunk_topics_keep_a_backlog_for_weeks() -> None:
    settings = pipeline_settings()
    async with pipeline(settings):
        async with KafkaClients(settings).admin() as admin:
            from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

            resources = [ConfigResource(ConfigResourceType.TOPIC, settings.topic(n)) for n in ("high", "low")]
            responses = await admin.describe_configs(resources)
        for resource in responses[0].to_object()["resources"]:
            configs = {e["config_names"]: e["config_value"] for e in resource["config_entries"]}
            retention = int(configs["retention.ms"])
            assert retention == -1 or retention >= 14 * 86_400_000, (resource["resource_name"], retention)


async def test_topics_create_pins_every_agent_group_at_the_start() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        p = settings.topic_prefix
        for group, partitions in ((group_id(p, "planner"), settings.activities_partitions),
                                  (group_id(p, "follows"), settings.follows_partitions),
                                  (group_id(p, "writer", "high"), settings.high_partitions),
                                  (group_id(p, "writer", "low"), settings.low_partitions)):
            assert await committed_offsets(settings, group) == dict.fromkeys(range(partitions), 0), group
        # so events published before any agent ever ran are processed, with no --from
        event = {"actor": "ann", "verb": "pin", "object": "o1", "id": "early", "time": "2024-01-01T00:00:00Z"}
        await produce_raw(settings, "activities", [(b"ann", json.dumps(event).encode())])
        planner = InProcess(settings, store, "planner")
        try:
            await wait_drained(settings, roles=["planner"], within=60)
        finally:
            await planner.close()
        assert await feed_ids(store, "user:ann") == ["early"]


async def _raw_topics(settings: Settings) -> None:
    """The pipeline topics made by other tooling: right shape, but no group offsets pinned."""
    async with KafkaClients(settings).admin() as admin:
        from fanout.agents.topics import topic_specs

        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)
                                   for name, (partitions, configs) in topic_specs(settings).items()])


def _activity(activity_id: str, minute: int) -> tuple[bytes, bytes]:
    event = {"actor": "ann", "verb": "pin", "object": activity_id, "id": activity_id,
             "time": f"2024-01-01T00:{minute:02d}:00Z"}
    return b"ann", json.dumps(event).encode()


async def test_an_agent_without_committed_offsets_on_a_non_empty_topic_refuses_to_start() -> None:
    settings = pipeline_settings(activities_partitions=1)
    await _raw_topics(settings)
    from fanout.cassandra import CassandraStore

    store = await CassandraStore.connect(settings)
    try:
        await store.migrate()
        await produce_raw(settings, "activities", [_activity(f"old-{i}", i) for i in range(3)])
        group = group_id(settings.topic_prefix, "planner")

        refused = await asyncio.to_thread(_cli, settings, "worker", "planner")
        assert refused.returncode == 2, refused.stderr[-3000:]
        last = refused.stderr.strip().splitlines()[-1]
        assert last.startswith("fanout: ") and "no committed offset" in last and "--from earliest" in last, last
        assert settings.topic("activities") + "[0]" in last and "3 records" in last, last
        assert await committed_offsets(settings, group) == {0: None}  # nothing decided for the operator

        latest = InProcess(settings, store, "planner", start_from="latest")
        try:
            await latest.ready()
            assert await committed_offsets(settings, group) == {0: 3}  # the history is skipped, on purpose
            await produce_raw(settings, "activities", [_activity("new-1", 10)])
            await wait_drained(settings, roles=["planner"], within=60)
        finally:
            await latest.close()
        assert await feed_ids(store, "user:ann") == ["new-1"]
    finally:
        await store.drop_keyspace()
        await store.close()
        await delete_topics(settings)


async def test_from_earliest_processes_the_history_and_empty_partitions_are_pinned() -> None:
    settings = pipeline_settings(activities_partitions=2)
    await _raw_topics(settings)
    from fanout.cassandra import CassandraStore

    store: Any = await CassandraStore.connect(settings)
    try:
        await store.migrate()
        group = group_id(settings.topic_prefix, "planner")
        # an agent on empty partitions pins them, so events produced later need no --from
        first = InProcess(settings, store, "planner")
        try:
            await first.ready()
        finally:
            await first.close()
        assert await committed_offsets(settings, group) == {0: 0, 1: 0}
        await produce_raw(settings, "activities", [_activity(f"a-{i}", i) for i in range(3)])
        second = InProcess(settings, store, "planner")
        try:
            await wait_drained(settings, roles=["planner"], within=60)
        finally:
            await second.close()
        assert await feed_ids(store, "user:ann") == ["a-2", "a-1", "a-0"]

        # a new group on a non-empty topic, told to start at the earliest offset
        follows_group = group_id(settings.topic_prefix, "follows")
        await produce_raw(settings, "follows", [(b"fan", json.dumps({"follower": "fan", "followee": "ann"}).encode())])
        follows = InProcess(settings, store, "follows", start_from="earliest")
        try:
            await wait_drained(settings, roles=["follows"], within=60)
        finally:
            await follows.close()
        assert sum(o or 0 for o in (await committed_offsets(settings, follows_group)).values()) == 1
        assert await store.following("fan") == ["ann"]
    finally:
        await store.drop_keyspace()
        await store.close()
        await delete_topics(settings)


async def test_a_partition_added_while_the_group_runs_starts_at_its_earliest_offset() -> None:
    """``kafka-topics --alter --partitions``: producers write to the new partition before the agents
    notice it; its records are processed from its start, not refused (which stopped every agent of
    ``fanout worker all`` after the planner's restarts)."""
    settings = pipeline_settings(activities_partitions=1)
    async with pipeline(settings) as store:
        await produce_to(settings, "activities", 0, [_activity("before", 1)])
        first = InProcess(settings, store, "planner")
        try:
            await wait_drained(settings, roles=["planner"], within=60)
        finally:
            await first.close()
        async with KafkaClients(settings).admin() as admin:
            await admin.create_partitions({settings.topic("activities"): NewPartitions(total_count=2)})
        await produce_to(settings, "activities", 1, [_activity("added-1", 2), _activity("added-2", 3)])
        group = group_id(settings.topic_prefix, "planner")
        assert await committed_offsets(settings, group) == {0: 1, 1: None}
        second = InProcess(settings, store, "planner")  # a member that sees the new partition
        try:
            await second.ready()
            await wait_drained(settings, roles=["planner"], within=60)
        finally:
            await second.close()
        assert await committed_offsets(settings, group) == {0: 1, 1: 2}
        assert await feed_ids(store, "user:ann") == ["added-2", "added-1", "before"]


async def test_records_stamped_far_ahead_of_the_brokers_clock_are_refused_where_produced() -> None:
    """A producer whose clock runs 55 minutes fast put its posts at the top of every follower's feed
    for 55 minutes (the event rule bounds `time` against the record's timestamp only); the event
    topics take the same 10-minute bound against the broker's clock, so the producer gets an error."""
    from aiokafka import AIOKafkaProducer
    from aiokafka.errors import InvalidTimestampError

    settings = pipeline_settings()
    async with pipeline(settings):
        producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
        await producer.start()
        try:
            now_ms = int(time.time() * 1000)
            for name in ("activities", "follows"):
                topic = settings.topic(name)
                with pytest.raises(InvalidTimestampError):
                    await producer.send_and_wait(topic, b"{}", key=b"k", timestamp_ms=now_ms + 55 * 60_000)
                await producer.send_and_wait(topic, b"{}", key=b"k", timestamp_ms=now_ms + 5 * 60_000)
        finally:
            await producer.stop()
