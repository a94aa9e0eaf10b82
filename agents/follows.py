"""The follows agent: follow and unfollow events -> the follow graph and follower timelines.

Group ``<prefix>follows`` consumes ``follows`` (key = follower) and runs
``Fanout.handle_follow(event, accepted_ts=record timestamp)`` for each record: a follow records
the edge and copies the followee's newest ``follow_activity_limit`` activities into the
follower's feeds; an unfollow removes them. Records of a partition are handled in order (so
one follower's follow/unfollow sequence is applied as produced), partitions concurrently; a
partition's offsets are committed once its store writes and dead letters are acknowledged.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fanout.codec import decode_follow_event
from fanout.core import Fanout
from fanout.errors import InvalidEvent, StoreError
from fanout.settings import Settings
from fanout.store import Store

from . import group_id, metrics
from .base import Agent, record_time_us, retry_store
from .poison import tied_to_record


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

    async def process(self, records: list[Any]) -> None:
        for record in records:
            try:
                if record.value is None:
                    raise InvalidEvent("follow event: the record has no value", reason="json")
                event = decode_follow_event(record.value, max_bytes=self.settings.max_event_bytes)
                accepted = record_time_us(record)
                await retry_store(self.role, partial(self.fanout.handle_follow, event, accepted_ts=accepted),
                                  **self.retry_options())
            except InvalidEvent as exc:
                await self.dead.send(record, exc)
                continue
            except StoreError as exc:  # dead-lettered when tied to this record, else raised
                await self.dead.send(record, await tied_to_record(self.fanout.store, exc))
                continue
            metrics.EVENTS.labels(self.role, "ok").inc()
