"""A history of Kafka records (activities and follows), applied with the agents' own code.

``History`` builds the records a producer would have written (topic, partition, offset, record
timestamp, key, value); ``History.apply`` runs records through the replay's ``BatchApplier``,
which calls ``Fanout.handle_activity``/``handle_follow`` exactly as the planner and the follows
agent do, and writes the chunks with the writer agents' ``TimelineWriter``. A record is produced
under a key (another than the follower's: a producer that keyed a follow by the followee, say) and
put in the Java client's partition for it, or in another (another client's partitioner).
"""

from __future__ import annotations

import json
from types import SimpleNamespace
from typing import Any

from aiokafka.partitioner import murmur2

from fanout import Fanout, Settings, Store
from fanout.agents.replay_apply import BatchApplier
from fanout.agents.replay_progress import ReplaySummary
from fanout.agents.replay_sinks import BufferedWriterSink


def home_partition(key: str, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, as the Java client)."""
    hashed: int = murmur2(key.encode())
    return (hashed & 0x7FFFFFFF) % partitions


class History:
    """Records in the order they were produced; offsets count per partition."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.records: list[Any] = []
        self._next: dict[tuple[str, int], int] = {}

    def _record(self, short: str, key: str, value: dict[str, Any], ts_ms: int, partition: int | None = None) -> Any:
        """A record produced under ``key``, in ``partition`` (default: the one the Java client gives it)."""
        topic = self.settings.topic(short)
        count = self.settings.follows_partitions if short == "follows" else self.settings.activities_partitions
        if partition is None:
            partition = home_partition(key, count)
        offset = self._next.get((topic, partition), 0)
        self._next[(topic, partition)] = offset + 1
        record = SimpleNamespace(topic=topic, partition=partition, offset=offset, timestamp=ts_ms,
                                 key=key.encode(), value=json.dumps(value).encode(), headers=[])
        self.records.append(record)
        return record

    def follow(self, follower: str, followee: str, ts_ms: int, *, op: str = "follow", key: str | None = None,
               time: str | None = None, partition: int | None = None) -> Any:
        """A follow event at record timestamp ``ts_ms``; ``key``: produced under another key than the
        follower (mis-keyed); ``time``: the event's own ``time`` field; ``partition``: where another
        client's partitioner put it (librdkafka's CRC32, Sarama's FNV-1a; partitions added since)."""
        event = {"follower": follower, "followee": followee, "op": op}
        if time is not None:
            event["time"] = time
        return self._record("follows", key or follower, event, ts_ms, partition)

    def unfollow(self, follower: str, followee: str, ts_ms: int, *, key: str | None = None,
                 time: str | None = None, partition: int | None = None) -> Any:
        return self.follow(follower, followee, ts_ms, op="unfollow", key=key, time=time, partition=partition)

    def post(self, actor: str, activity_id: str, ts_ms: int, *, op: str = "add", key: str | None = None) -> Any:
        event = {"actor": actor, "verb": "pin", "object": f"object:{activity_id}", "id": activity_id, "op": op}
        return self._record("activities", key or actor, event, ts_ms)


def other_key(key: str, partitions: int) -> str:
    """A key whose partition differs from ``key``'s."""
    home = home_partition(key, partitions)
    n = 0
    while home_partition(f"{key}~{n}", partitions) == home:
        n += 1
    return f"{key}~{n}"


async def apply(fanout: Fanout, *records: Any) -> None:
    """Apply ``records`` one at a time, in the given order, with the agents' code."""
    summary = ReplaySummary(group="test")
    sink = BufferedWriterSink(fanout.writer, summary)
    fanout.sink = sink
    applier = BatchApplier(fanout.settings, fanout, sink, summary, None)
    for record in records:
        await applier.process([record])


async def replayed(settings: Settings, store: Store, records: list[Any]) -> Fanout:
    """A full replay of ``records`` (in the timestamp order of the replay's merge) into ``store``."""
    fanout = Fanout(store, settings)
    await apply(fanout, *merged(settings, records))
    return fanout


def merged(settings: Settings, records: list[Any]) -> list[Any]:
    """The replay's merge (``agents/replay_merge.py``): always the smallest (timestamp, topic,
    partition, offset) among the partitions' next records; a partition stays in offset order."""
    heads: dict[tuple[str, int], list[Any]] = {}
    for record in sorted(records, key=lambda r: r.offset):
        heads.setdefault((record.topic, record.partition), []).append(record)
    follows = settings.topic("follows")
    out: list[Any] = []
    while heads:
        tp = min(heads, key=lambda k: (heads[k][0].timestamp, k[0] != follows, k[1]))
        out.append(heads[tp].pop(0))
        if not heads[tp]:
            del heads[tp]
    return out
