"""The writer agents: chunk messages of one priority -> timeline rows in the store.

Group ``<prefix>writer-high`` (or ``-low``) consumes the ``high`` (or ``low``) topic. Each
partition's batch (up to ``batch_max_records`` chunks) is decoded and applied with one
``TimelineWriter.write_chunks`` call (the store bounds the writes in flight); its offsets are
committed only after the store acknowledged every row. A retriable ``StoreError`` is retried
with exponential backoff a bounded number of times, then the partition is re-fetched later
(``fanout.agents.base``), without committing; a non-retriable one stops the worker, uncommitted,
unless the store still answers reads: then the chunks are written one by one and the ones it
refuses are dead-lettered (``agents/poison.py``). A chunk that does not decode (the codec also
refuses what the store could not write) goes to the dead-letter topic.

The order of chunks inside a batch does not matter: adds are written at the activity time and
removes at ``REMOVED_WRITE_TS``, newest write wins, so a remove applied before its add still
wins. High and low run as separate groups, so a LOW backlog never delays HIGH feeds.
"""

from __future__ import annotations

from typing import Any

from fanout.codec import ChunkMessage, decode_chunk
from fanout.errors import InvalidEvent
from fanout.settings import Settings
from fanout.store import Store
from fanout.writer import TimelineWriter

from . import group_id, metrics
from .base import Agent
from .poison import write_isolating


class WriterAgent(Agent):
    def __init__(self, settings: Settings, store: Store, priority: str, **options: Any) -> None:
        self.role = f"writer-{priority}"
        super().__init__(
            settings,
            group=group_id(settings.topic_prefix, "writer", priority),
            topics=[settings.topic(priority)],
            max_records=settings.low_batch_max_records if priority == "low" else settings.batch_max_records,
            fetch_wait_ms=settings.low_batch_max_wait_ms if priority == "low" else settings.batch_max_wait_ms,
            **options,
        )
        self.priority = priority
        self.store = store
        self.writer = TimelineWriter(store, max_length=settings.max_length, trim_every=settings.trim_every,
                                     tracked_feeds=settings.trim_tracked_feeds, follower_kinds=settings.feed_kinds)
        self.rows_written = 0

    async def process(self, records: list[Any]) -> None:
        chunks: list[tuple[Any, ChunkMessage]] = []
        for record in records:
            try:
                if record.value is None:
                    raise InvalidEvent("chunk message: the record has no value", reason="json")
                chunks.append((record, decode_chunk(record.value)))
            except InvalidEvent as exc:
                await self.dead.send(record, exc)
        if chunks:
            rows = await write_isolating(self.role, self.writer, chunks, self.dead, **self.retry_options())
            self.rows_written += rows
            metrics.ROWS_WRITTEN.labels(self.priority).inc(rows)
            metrics.EVENTS.labels(self.role, "ok").inc(len(chunks))
