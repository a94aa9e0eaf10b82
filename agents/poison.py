"""Telling a poison record from a broken store, so one record never stops a worker.

A non-retriable ``StoreError`` (Cassandra's InvalidRequest, say) is either the record's fault (a
value the database refuses) or the store's (a missing table, bad credentials). The rule: when the
store still answers a read of its timelines, the failure is tied to the record, which becomes a
dead letter with reason ``store``; otherwise the error propagates and the worker stops uncommitted,
as before. The codec already refuses every value known to break a write (``fanout.codec``), so
this is the safety net for the ones nobody thought of.

The writer applies a whole batch of chunks in one call; when that call is refused, it writes the
chunks one at a time (``write_isolating``), so only the refused chunks are dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from fanout.codec import ChunkMessage
from fanout.errors import InvalidEvent, StoreError
from fanout.store import Store
from fanout.writer import TimelineWriter

from .base import retry_store
from .deadletters import DeadLetters

PROBE_FEED = "fanout:probe"  # a feed nobody writes: reading it costs one partition lookup


async def tied_to_record(store: Store, exc: StoreError) -> InvalidEvent:
    """The dead-letter error for a record the store refused; re-raises ``exc`` when the failure is
    retriable or the store itself is broken (it does not answer a read either)."""
    if exc.retriable:
        raise exc
    try:
        await store.read(PROBE_FEED, limit=1)
    except StoreError:
        raise exc from None
    return InvalidEvent(f"the store refused it: {exc}", reason="store")


async def write_isolating(
    role: str, writer: TimelineWriter, chunks: Sequence[tuple[Any, ChunkMessage]], dead: DeadLetters,
    **retry_options: Any,
) -> int:
    """Apply the chunks (record, chunk) in one call; if the store refuses that call, apply them
    one by one and dead-letter each chunk it refuses. Returns the timeline rows written.
    ``retry_options`` bound the retries of a retriable error (``retry_store``)."""
    try:
        return await retry_store(role, partial(writer.write_chunks, [chunk for _, chunk in chunks]), **retry_options)
    except StoreError as exc:
        await tied_to_record(writer.store, exc)  # re-raises unless the store still answers
    rows = 0
    for record, chunk in chunks:
        try:
            rows += await retry_store(role, partial(writer.write_chunks, [chunk]), **retry_options)
        except StoreError as exc:
            await dead.send(record, await tied_to_record(writer.store, exc))
    return rows
