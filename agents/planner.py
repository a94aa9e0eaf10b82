"""The planner agent: activity events -> chunk messages on the ``high`` and ``low`` topics.

Group ``<prefix>planner`` consumes ``activities`` (key = actor). For every record it runs
``Fanout.handle_activity(event, accepted_ts=record timestamp)``, which updates the registry and
the author's own feed in the store and hands each chunk to ``KafkaChunkSink``. The offsets of a
batch are committed only after every produced chunk (and dead letter) is acknowledged by the
broker, so a crash re-plans the batch; re-planning produces the same chunks (deterministic ids
and write timestamps), which the writers apply idempotently.

Partitions of a batch are planned concurrently, the records of one partition in order, so all
events of one actor are planned in the order they were produced.

Chunk keys: the first feed id of the chunk. The same follower page of an actor lands on the same
partition each time (its add and its remove are applied by the same writer, in order) and one
writer sees most writes of a feed, which keeps the amortised trimming of ``TimelineWriter``
close to its per-feed budget.
"""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

from aiokafka.errors import KafkaError

from fanout.codec import ChunkMessage, decode_activity_event, encode
from fanout.core import Fanout
from fanout.errors import InvalidEvent
from fanout.settings import Settings
from fanout.store import Store

from . import group_id, metrics
from .base import Agent, Batch, RetryBatch, retry_store


class KafkaChunkSink:
    """A ``ChunkSink`` that produces each chunk to the topic of its priority."""

    def __init__(self, producer: Any, settings: Settings) -> None:
        self.producer = producer
        self.topics = {"high": settings.topic("high"), "low": settings.topic("low")}
        self._pending: list[asyncio.Future[Any]] = []

    async def send(self, chunk: ChunkMessage) -> None:
        key = (chunk.feeds[0] if chunk.feeds else chunk.activity.id).encode()
        future = await self.producer.send(self.topics[chunk.priority], value=encode(chunk), key=key)
        self._pending.append(future)
        metrics.CHUNKS_PLANNED.labels(chunk.priority).inc()

    async def flush(self) -> None:
        """Wait until the broker acknowledged every chunk sent so far."""
        pending, self._pending = self._pending, []
        if pending:
            await asyncio.gather(*pending)

    def discard(self) -> None:
        self._pending = []


class PlannerAgent(Agent):
    role = "planner"

    def __init__(self, settings: Settings, store: Store, **options: Any) -> None:
        super().__init__(
            settings,
            group=group_id(settings.topic_prefix, "planner"),
            topics=[settings.topic("activities")],
            max_records=settings.batch_max_records,
            fetch_wait_ms=settings.batch_max_wait_ms,
            **options,
        )
        self.store = store
        self.sink: KafkaChunkSink
        self.fanout: Fanout

    async def on_started(self) -> None:
        self.sink = KafkaChunkSink(self.producer, self.settings)
        self.fanout = Fanout(self.store, self.settings, sink=self.sink)

    async def process(self, batch: Batch) -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for records in batch.values():
                    group.create_task(self._partition(records))
        except ExceptionGroup as failed:  # the first failure, not a group, reaches the worker
            raise failed.exceptions[0] from None
        try:
            await self.sink.flush()
            await self.dead.flush()
        except KafkaError as exc:
            self.sink.discard()
            raise RetryBatch(f"producing chunks failed: {exc!r}") from exc

    async def _partition(self, records: list[Any]) -> None:
        for record in records:
            await self._one(record)

    async def _one(self, record: Any) -> None:
        try:
            if record.value is None:
                raise InvalidEvent("activity event: the record has no value", reason="json")
            event = decode_activity_event(record.value, max_bytes=self.settings.max_event_bytes)
            # ms -> us: a replay derives the same time and id (no timestamp: the planner's clock)
            accepted = record.timestamp * 1000 if record.timestamp is not None and record.timestamp >= 0 else None
            await retry_store(self.role, partial(self.fanout.handle_activity, event, accepted_ts=accepted))
        except InvalidEvent as exc:
            await self.dead.send(record, exc)
            return
        metrics.EVENTS.labels(self.role, "ok").inc()
