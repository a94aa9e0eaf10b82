"""The pipeline's Kafka topics: ``activities``, ``follows``, ``high``, ``low`` and ``dead``.

``activities`` (key = actor) and ``follows`` (key = follower) are the system of record: they
keep ``activities_retention_ms`` (default -1, forever) so a replay can rebuild every feed.
``high``/``low`` carry planned chunk messages (``high`` gets more partitions, so more writers
can work on active users' feeds at once); they keep ``chunks_retention_ms`` (default 30 days):
chunks are derived data (a replay re-plans them), but a LOW backlog must never be deleted before
its writers saw it, so the retention is far above any backlog the agents report
(``fanout_backlog_age_seconds``; alert well below it) and an agent that finds records deleted
before its group read them says so. ``dead`` holds events that broke the contract (30 days).

Topics are never created implicitly (the project's broker has ``auto.create.topics.enable=false``;
the agents and producers list the topics before they use them, since another broker may still
create a topic on its first metadata request). ``create_topics`` makes the missing ones and pins
every agent group at offset 0 of each topic it created, so events published before any agent ran
are processed; ``topic_drift`` compares existing topics with these specs (partitions,
``retention.ms``, ``cleanup.policy``, ``compression.type``, and on ``activities`` and ``follows``
``message.timestamp.after.max.ms``).

The record timestamp is the time of an event without ``time``, and an event's ``time`` may lie
at most ``FANOUT_MAX_FUTURE_SKEW_SECONDS`` after it (``fanout.codec``); but the producer's clock
sets it. So ``activities`` and ``follows`` take ``message.timestamp.after.max.ms`` = that same
skew, at least a minute: the broker refuses a record stamped further ahead of its own clock (the
producer gets ``InvalidTimestampError``), and no event sits at the top of feeds for more than twice
the skew (Kafka 4's default lets a record be 1 hour ahead). The setting exists from Kafka 3.6.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aiokafka import TopicPartition
from aiokafka.admin import NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from fanout.errors import ConfigError
from fanout.kafka import KafkaClients, MissingTopics, require_topics
from fanout.retry import retry
from fanout.settings import Settings

from . import group_id

TOPIC_NAMES = ("activities", "follows", "high", "low", "dead")
CHECKED_CONFIGS = ("retention.ms", "cleanup.policy", "compression.type", "message.timestamp.after.max.ms")
_TOPIC_ALREADY_EXISTS = 36
_DEAD_RETENTION_MS = 30 * 86_400 * 1000  # dead letters wait a month for an operator

__all__ = [
    "MissingTopics",
    "agent_groups",
    "check_topics",
    "committed_offsets",
    "create_topics",
    "delete_topics",
    "describe_topics",
    "topic_drift",
    "topic_specs",
]


def topic_specs(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """Full topic name -> (partitions, topic configs)."""
    # zstd by the broker: ~4.4x less disk for the replayable log (agents/REPLAY.md), no client change
    log = {"retention.ms": str(settings.activities_retention_ms), "cleanup.policy": "delete",
           "compression.type": "zstd",
           "message.timestamp.after.max.ms": str(max(settings.max_future_skew_seconds, 60) * 1000)}
    chunks = {"retention.ms": str(settings.chunks_retention_ms), "cleanup.policy": "delete",
              "compression.type": "producer"}
    dead = {"retention.ms": str(_DEAD_RETENTION_MS), "cleanup.policy": "delete", "compression.type": "producer"}
    return {
        settings.topic("activities"): (settings.activities_partitions, dict(log)),
        settings.topic("follows"): (settings.follows_partitions, dict(log)),
        settings.topic("high"): (settings.high_partitions, dict(chunks)),
        settings.topic("low"): (settings.low_partitions, dict(chunks)),
        settings.topic("dead"): (1, dead),
    }


def agent_groups(settings: Settings) -> list[tuple[str, str]]:
    """(group, topic) of every agent."""
    p = settings.topic_prefix
    return [
        (group_id(p, "planner"), settings.topic("activities")),
        (group_id(p, "writer", "high"), settings.topic("high")),
        (group_id(p, "writer", "low"), settings.topic("low")),
        (group_id(p, "follows"), settings.topic("follows")),
    ]


async def committed_offsets(admin: Any, group: str, partitions: list[Any], *, within: float = 30.0) -> Any:
    """``admin.list_consumer_group_offsets``, retrying retriable errors for up to ``within`` s.

    A fresh cluster creates its offsets topic on the first coordinator lookup and answers
    GroupCoordinatorNotAvailable meanwhile; so does a broker that is loading its coordinators.
    """
    return await retry(
        partial(admin.list_consumer_group_offsets, group, partitions=partitions),
        within=within, first_delay=0.1, max_delay=2.0,
    )


def replication(settings: Settings, brokers: int) -> tuple[int, int]:
    """(replication factor, min.insync.replicas) of the topics, on a cluster of ``brokers`` brokers.

    ``kafka_replication_factor`` 0 picks min(3, brokers); ``kafka_min_insync_replicas`` 0 picks one
    less than the replication factor, at least 1 (RF 3: 2, so a write survives one broker down).
    """
    factor = settings.kafka_replication_factor or max(1, min(3, brokers))
    if factor > brokers:
        raise ConfigError(f"FANOUT_KAFKA_REPLICATION_FACTOR={factor} needs {factor} brokers; "
                          f"{settings.kafka_bootstrap} has {brokers}")
    return factor, settings.kafka_min_insync_replicas or max(1, factor - 1)


async def create_topics(settings: Settings) -> list[str]:
    """Create the missing pipeline topics and pin every agent group at their start; return the
    names created (existing ones are kept as they are: ``topic_drift`` tells how they differ)."""
    async with KafkaClients(settings).admin() as admin:
        brokers = len((await admin.describe_cluster())["brokers"])
        factor, min_insync = replication(settings, brokers)
        existing = set(await admin.list_topics())
        specs = topic_specs(settings)
        wanted = [
            NewTopic(name, partitions, factor, topic_configs={**configs, "min.insync.replicas": str(min_insync)})
            for name, (partitions, configs) in specs.items()
            if name not in existing
        ]
        if not wanted:
            return []
        response = await admin.create_topics(wanted)
        created: list[str] = []
        errors: list[str] = []
        for item in response.to_object()["topic_errors"]:
            code = item["error_code"]
            if code == 0:
                created.append(item["topic"])
            elif code != _TOPIC_ALREADY_EXISTS:  # a concurrent create: fine
                errors.append(f"{item['topic']}: error {code} {item.get('error_message') or ''}".strip())
        if errors:
            raise ConfigError("could not create Kafka topics: " + "; ".join(errors))
    await _pin_groups(settings, {name: specs[name][0] for name in created})
    return sorted(created)


async def _pin_groups(settings: Settings, created: dict[str, int]) -> None:
    """Commit offset 0 for every agent group on every partition of the topics just created: the
    groups start at the beginning of them, whoever publishes first (see ``fanout.agents.offsets``)."""
    clients = KafkaClients(settings)
    for group, topic in agent_groups(settings):
        if topic not in created:
            continue
        tps = [TopicPartition(topic, p) for p in range(created[topic])]
        consumer = clients.consumer("fanout-topics", group_id=group, enable_auto_commit=False)
        try:
            await consumer.start()
            consumer.assign(tps)
            # a topic just created may not be known to every broker yet: retriable errors
            await retry(partial(consumer.commit, dict.fromkeys(tps, 0)), within=30.0, first_delay=0.1)
        finally:
            await consumer.stop()


async def check_topics(settings: Settings, names: tuple[str, ...] = TOPIC_NAMES) -> None:
    """Raise ``MissingTopics`` naming every pipeline topic that does not exist."""
    await require_topics(KafkaClients(settings), [settings.topic(n) for n in names])


async def topic_drift(settings: Settings) -> dict[str, list[str]]:
    """Pipeline topic -> how it differs from ``topic_specs`` (missing, partitions, each checked
    config); topics that match are left out."""
    specs = topic_specs(settings)
    drift: dict[str, list[str]] = {}
    async with KafkaClients(settings).admin() as admin:
        existing = set(await admin.list_topics())
        present = [name for name in specs if name in existing]
        for name in specs:
            if name not in existing:
                drift[name] = [f"{name}: missing (run `fanout topics create`)"]
        if not present:
            return drift
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(present)}
        resources = [ConfigResource(ConfigResourceType.TOPIC, name, dict.fromkeys(CHECKED_CONFIGS)) for name in present]
        configs: dict[str, dict[str, str]] = {}
        for response in await admin.describe_configs(resources):
            for resource in response.to_object()["resources"]:
                configs[resource["resource_name"]] = {
                    entry["config_names"]: entry["config_value"] for entry in resource["config_entries"]
                }
    for name in present:
        expected_partitions, expected = specs[name]
        found: list[str] = []
        if partitions[name] != expected_partitions:
            found.append(f"{name}: {partitions[name]} partitions, expected {expected_partitions}")
        for key in CHECKED_CONFIGS:
            if key not in expected:
                continue  # not set on this topic (the broker's default is fine)
            value = configs.get(name, {}).get(key)
            if value != expected[key]:
                found.append(f"{name}: {key} is {value}, expected {expected[key]}")
        if found:
            drift[name] = found
    return drift


async def delete_topics(settings: Settings) -> None:
    """Delete the pipeline topics that exist (tests and teardown)."""
    async with KafkaClients(settings).admin() as admin:
        existing = set(await admin.list_topics())
        doomed = [settings.topic(n) for n in TOPIC_NAMES if settings.topic(n) in existing]
        if doomed:
            await admin.delete_topics(doomed)


async def describe_topics(settings: Settings) -> dict[str, int]:
    """Existing pipeline topic -> number of partitions."""
    async with KafkaClients(settings).admin() as admin:
        existing = set(await admin.list_topics())
        names = [settings.topic(n) for n in TOPIC_NAMES if settings.topic(n) in existing]
        if not names:
            return {}
        return {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(names)}
