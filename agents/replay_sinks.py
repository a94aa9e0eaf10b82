"""Where a replay's chunks go: written in bulk by the writer code, or published for the writer agents.

Chunks are applied in-process by ``TimelineWriter.write_chunks`` (the writer agents' code),
buffered and written in bulk (``BufferedWriterSink``); ``via_kafka`` publishes them to the
``high``/``low`` topics instead (``PublishingSink``), for the writer agents to apply. Either
counts the chunks by priority in the summary. ``users=`` puts a ``UserFilterSink`` in front.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from functools import partial
from typing import Final, Protocol

import msgspec

from fanout.codec import ChunkMessage
from fanout.feeds import feed_id
from fanout.pushing import ChunkSink
from fanout.writer import TimelineWriter

from .base import retry_store
from .replay_options import ROLE
from .replay_progress import ReplaySummary

__all__ = ["BufferedWriterSink", "FlushingSink", "PublishingSink", "UserFilterSink"]

_FLUSH_FEEDS: Final = 200_000  # buffered chunk feeds written at once


class FlushingSink(ChunkSink, Protocol):
    """A ``ChunkSink`` whose ``flush`` returns once every chunk sent so far is acknowledged."""

    async def flush(self) -> None: ...


class UserFilterSink:
    """A ``ChunkSink`` that keeps only the feeds of ``users`` (of the fanned kinds)."""

    def __init__(self, inner: ChunkSink, users: Iterable[str], kinds: Sequence[str]) -> None:
        self.inner = inner
        self.feeds = frozenset(feed_id(kind, user) for user in users for kind in kinds)

    async def send(self, chunk: ChunkMessage) -> None:
        feeds = [f for f in chunk.feeds if f in self.feeds]
        if feeds:
            await self.inner.send(msgspec.structs.replace(chunk, feeds=feeds))


class BufferedWriterSink:
    """Buffers chunks and writes them with ``TimelineWriter.write_chunks`` (the writer agents'
    code) in bulk: on ``flush`` and whenever ``_FLUSH_FEEDS`` feeds are waiting."""

    def __init__(self, writer: TimelineWriter, summary: ReplaySummary) -> None:
        self.writer = writer
        self.summary = summary
        self._chunks: list[ChunkMessage] = []
        self._feeds = 0

    async def send(self, chunk: ChunkMessage) -> None:
        _count(self.summary, chunk)
        self._chunks.append(chunk)
        self._feeds += len(chunk.feeds)
        if self._feeds >= _FLUSH_FEEDS:
            await self.flush()

    async def flush(self) -> None:
        chunks, self._chunks, self._feeds = self._chunks, [], 0
        if chunks:
            await retry_store(ROLE, partial(self.writer.write_chunks, chunks))


class PublishingSink:
    """``via_kafka``: chunks go to the ``high``/``low`` topics through ``inner`` (a
    ``KafkaChunkSink``); ``flush`` waits for the broker's acknowledgements."""

    def __init__(self, inner: FlushingSink, summary: ReplaySummary) -> None:
        self.inner = inner
        self.summary = summary

    async def send(self, chunk: ChunkMessage) -> None:
        _count(self.summary, chunk)
        self.summary.published_rows += len(chunk.feeds)
        await self.inner.send(chunk)

    async def flush(self) -> None:
        await self.inner.flush()


def _count(summary: ReplaySummary, chunk: ChunkMessage) -> None:
    if chunk.priority == "high":
        summary.chunks_high += 1
    else:
        summary.chunks_low += 1
