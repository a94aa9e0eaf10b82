"""The follows agent: follow and unfollow events -> the follow graph and follower timelines.

Group ``<prefix>follows`` consumes ``follows`` (key = follower) and runs
``Fanout.handle_follow(event, accepted_ts=record timestamp, in_order=...)`` for each record: a
follow records the edge and copies the followee's newest ``follow_activity_limit`` activities
into the follower's feeds; an unfollow removes them. Records of a partition are handled in order
(so one follower's follow/unfollow sequence is applied as produced), partitions concurrently;
a
partition's offsets are committed once its store writes and dead letters are acknowledged.

The partition order is the truth (``fanout.graph``): a record in its follower's own partition
(``in_home_partition``: Kafka's default partitioner on the key ``follower``) is applied after
the follower's earlier events whatever its timestamp says; a record produced under another key
counts only when its record timestamp is newer than the edge's last decision.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from aiokafka.partitioner import murmur2

from fanout.codec import decode_follow_event
from fanout.core import Fanout
from fanout.errors import InvalidEvent, StoreError
from fanout.settings import Settings
from fanout.store import Store

from . import group_id, metrics
from .base import Agent, record_time_us, retry_store
from .poison import tied_to_record


def in_home_partition(record: Any, follower: str, partitions: int) -> bool:
    """Whether ``record`` is in the partition Kafka's default partitioner gives the key
    ``follower`` (murmur2, as every Kafka client does by default) of a topic of ``partitions``."""
    hashed: int = murmur2(follower.encode())
    return bool(record.partition == (hashed & 0x7FFFFFFF) % partitions)


class FollowsAgent(Agent):
    role = "follows"

    def __init__(self, settings: Settings, store: Store, **options: Any) -> None:
        super().__init__(
            settings,
            group=group_id(settings.topic_prefix, "follows"),
            topics=[settings.topic("follows")],
            max_records=settings.batch_max_records,
            fetch_wait_ms=settings.batch_max_wait_ms,
            **options,
        )
        self.fanout = Fanout(store, settings)

    def _partitions(self, topic: str) -> int:
        """How many partitions ``topic`` has (the consumer's metadata; the settings' count before
        the first metadata answer)."""
        known = self.consumer.partitions_for_topic(topic)
        return len(known) if known else self.settings.follows_partitions

    async def process(self, records: list[Any]) -> None:
        for record in records:
            try:
                if record.value is None:
                    raise InvalidEvent("follow event: the record has no value", reason="json")
                event = decode_follow_event(record.value, max_bytes=self.settings.max_event_bytes)
                accepted = record_time_us(record)
                in_order = in_home_partition(record, event.follower, self._partitions(record.topic))
                handle = partial(self.fanout.handle_follow, event, accepted_ts=accepted, in_order=in_order)
                await retry_store(self.role, handle, **self.retry_options())
            except InvalidEvent as exc:
                await self.dead.send(record, exc)
                continue
            except StoreError as exc:  # dead-lettered when tied to this record, else raised
                await self.dead.send(record, await tied_to_record(self.fanout.store, exc))
                continue
            metrics.EVENTS.labels(self.role, "ok").inc()
