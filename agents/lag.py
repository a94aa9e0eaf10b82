"""Consumer lag per agent group and partition: log end offset minus committed offset.

A partition the group never committed counts from the earliest offset still in the log (an agent
refuses to start on it until told ``--from earliest|latest``; ``fanout topics create`` pins every
group at offset 0 of the topics it creates, so this happens only with topics made otherwise or
committed offsets that expired).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from aiokafka import TopicPartition

from fanout.kafka import KafkaClients
from fanout.settings import Settings

from .topics import agent_groups, committed_offsets


class PartitionLag(NamedTuple):
    group: str
    topic: str
    partition: int
    committed: int | None  # None: the group never committed this partition
    end: int
    lag: int


async def consumer_lag(settings: Settings) -> list[PartitionLag]:
    """Lag of every agent group on every partition of its topic (missing topics are skipped)."""
    clients = KafkaClients(settings)
    consumer = clients.consumer("fanout-lag")
    try:
        await consumer.start()
        async with clients.admin() as admin:
            return await _lag_rows(settings, admin, consumer)
    finally:
        await consumer.stop()


async def _lag_rows(settings: Settings, admin: Any, consumer: Any) -> list[PartitionLag]:
    existing = set(await admin.list_topics())
    groups = [(g, t) for g, t in agent_groups(settings) if t in existing]
    if not groups:
        return []
    partitions = {
        t["topic"]: sorted(p["partition"] for p in t["partitions"])
        for t in await admin.describe_topics([t for _, t in groups])
    }
    tps = [TopicPartition(t, p) for _, t in groups for p in partitions.get(t, [])]
    ends = await consumer.end_offsets(tps)
    starts = await consumer.beginning_offsets(tps)
    rows: list[PartitionLag] = []
    for group, topic in groups:
        mine = [TopicPartition(topic, p) for p in partitions.get(topic, [])]
        committed = await committed_offsets(admin, group, mine)
        for tp in mine:
            meta = committed.get(tp)
            offset = meta.offset if meta is not None and meta.offset >= 0 else None
            base = offset if offset is not None else starts[tp]
            lag = max(0, ends[tp] - base)
            rows.append(PartitionLag(group, topic, tp.partition, offset, ends[tp], lag))
    return rows


def totals(rows: list[PartitionLag]) -> dict[str, int]:
    """Total lag per group."""
    out: dict[str, int] = {}
    for row in rows:
        out[row.group] = out.get(row.group, 0) + row.lag
    return out


async def group_lag(settings: Settings, group: str) -> int:
    """Total lag of one group (tests and health checks)."""
    return totals([r for r in await consumer_lag(settings) if r.group == group]).get(group, 0)
