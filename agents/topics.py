"""The pipeline's Kafka topics: ``activities``, ``follows``, ``high``, ``low`` and ``dead``.

``activities`` (key = actor) and ``follows`` (key = follower) are the system of record: they
keep ``activities_retention_ms`` (default -1, forever) so a replay can rebuild every feed.
``high``/``low`` carry planned chunk messages (``high`` gets more partitions, so more writers
can work on active users' feeds at once); ``dead`` holds events that broke the contract.

Topics are never created implicitly: the broker may have ``auto.create.topics.enable`` on,
which would create one-partition topics on the first metadata request, so the agents call
``check_topics`` (a plain topic listing) before they subscribe.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aiokafka.admin import NewTopic

from fanout.errors import ConfigError
from fanout.kafka import KafkaClients
from fanout.retry import retry
from fanout.settings import Settings

TOPIC_NAMES = ("activities", "follows", "high", "low", "dead")
_TOPIC_ALREADY_EXISTS = 36
_DEAD_RETENTION_MS = 30 * 86_400 * 1000  # dead letters wait a month for an operator


class MissingTopics(ConfigError):
    """Some pipeline topics do not exist."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(
            f"missing Kafka topic(s): {', '.join(missing)}; run `fanout topics create` first"
        )
        self.missing = missing


def topic_specs(settings: Settings) -> dict[str, tuple[int, dict[str, str]]]:
    """Full topic name -> (partitions, topic configs)."""
    # zstd by the broker: ~4.4x less disk for the replayable log (agents/REPLAY.md), no client change
    log = {
        "retention.ms": str(settings.activities_retention_ms),
        "cleanup.policy": "delete",
        "compression.type": "zstd",
    }
    return {
        settings.topic("activities"): (settings.activities_partitions, dict(log)),
        settings.topic("follows"): (settings.follows_partitions, dict(log)),
        settings.topic("high"): (settings.high_partitions, {}),
        settings.topic("low"): (settings.low_partitions, {}),
        settings.topic("dead"): (1, {"retention.ms": str(_DEAD_RETENTION_MS)}),
    }


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
    """Create the missing pipeline topics; return the names created (existing ones are kept)."""
    async with KafkaClients(settings).admin() as admin:
        brokers = len((await admin.describe_cluster())["brokers"])
        factor, min_insync = replication(settings, brokers)
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(name, partitions, factor, topic_configs={**configs, "min.insync.replicas": str(min_insync)})
            for name, (partitions, configs) in topic_specs(settings).items()
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
        return sorted(created)


async def check_topics(settings: Settings, names: tuple[str, ...] = TOPIC_NAMES) -> None:
    """Raise ``MissingTopics`` naming every pipeline topic that does not exist."""
    async with KafkaClients(settings).admin() as admin:
        existing = set(await admin.list_topics())
    missing = [settings.topic(n) for n in names if settings.topic(n) not in existing]
    if missing:
        raise MissingTopics(missing)


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
