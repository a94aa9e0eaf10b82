"""Timeline writes as driver requests: one bound statement per write, or UNLOGGED batches per feed.

``write_mode`` picks the strategy (``WRITE_MODES``; measured in the package docstring):

* ``"concurrent"``: one single-row statement per write.
* ``"partition_batch"``: the writes of a call grouped by feed, in their order, into runs of at
  most ``BATCH_MAX_STATEMENTS`` rows and ``BATCH_MAX_BYTES`` of values; a run becomes one UNLOGGED
  batch (one request, one mutation of one partition), a lone write a plain statement.

The grouping is pure: ``bound_writes`` and ``feed_groups`` need prepared statements (anything with
``bind``), no server.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Final

from ..store import TimelineWrite
from .rows import encode_extra

WRITE_MODES: Final = ("concurrent", "partition_batch")
# Single-partition batches are exempt from batch_size_warn/fail_threshold (CASSANDRA-10876,
# checked on 5.0.7: a 60 KiB one-feed batch neither warns nor fails); these caps only keep each
# request small enough to spread over the in-flight slots (16 KiB/100 measured best of 4/16/64 KiB).
BATCH_MAX_BYTES: Final = 16 * 1024
BATCH_MAX_STATEMENTS: Final = 100


def timeline_requests(mode: str, writes: Sequence[TimelineWrite], *, insert: Any, delete: Any) -> Iterator[Any]:
    """The requests that apply ``writes`` in write mode ``mode`` (``insert``/``delete``: the prepared
    timeline statements), produced lazily so that a failed call stops binding."""
    if mode == "partition_batch":
        from cassandra.query import BatchStatement, BatchType

        for group in feed_groups(writes, insert=insert, delete=delete):
            yield _as_request(group, BatchStatement, BatchType.UNLOGGED)
    else:
        for bound, _ in bound_writes(writes, insert=insert, delete=delete):
            yield bound


def bound_writes(writes: Iterable[TimelineWrite], *, insert: Any, delete: Any) -> Iterator[tuple[Any, int]]:
    """Each write as a bound statement, with the approximate size of its values in bytes.

    A null ``target`` or ``extra`` is sent unset, so an insert never writes cell tombstones.
    """
    from cassandra.query import UNSET_VALUE

    extras: dict[str, str] = {}  # an activity fanned into many feeds is encoded once
    for w in writes:
        a = w.activity
        if w.remove:
            yield delete.bind((w.write_ts, w.feed, a.ts, a.id)), 32 + len(w.feed) + len(a.id)
            continue
        extra: Any = UNSET_VALUE
        size = 48 + len(w.feed) + len(a.id) + len(a.actor) + len(a.verb) + len(a.object)
        if a.extra is not None:
            text = extras.get(a.id)
            if text is None:
                text = extras[a.id] = encode_extra(a.extra)
            extra = text
            size += len(text)
        target: Any = UNSET_VALUE
        if a.target is not None:
            target = a.target
            size += len(a.target)
        yield insert.bind((w.feed, a.ts, a.id, a.actor, a.verb, a.object, target, extra, w.write_ts)), size


def feed_groups(writes: Sequence[TimelineWrite], *, insert: Any, delete: Any) -> Iterator[list[Any]]:
    """The bound writes, feed by feed (in order of first appearance, each feed's writes in their
    order), cut into runs of at most ``BATCH_MAX_STATEMENTS`` and ``BATCH_MAX_BYTES`` of values."""
    by_feed: dict[str, list[TimelineWrite]] = {}
    for w in writes:
        by_feed.setdefault(w.feed, []).append(w)
    for feed_writes in by_feed.values():
        group: list[Any] = []
        size = 0
        for bound, cost in bound_writes(feed_writes, insert=insert, delete=delete):
            if group and (size + cost > BATCH_MAX_BYTES or len(group) >= BATCH_MAX_STATEMENTS):
                yield group
                group, size = [], 0
            group.append(bound)
            size += cost
        if group:
            yield group


def row_deletes(feed: str, rows: Iterable[tuple[int, str, int]], *, delete: Any) -> Iterator[Any]:
    """Deletes of ``feed``'s rows ``(ts, activity_id, write_ts)``, each at its own write time (a
    trim: a replay of the same write stays deleted, a newer write lands), as UNLOGGED batches of
    at most ``BATCH_MAX_STATEMENTS`` rows of the one partition, produced lazily."""
    from cassandra.query import BatchStatement, BatchType

    group: list[Any] = []
    for ts, activity_id, write_ts in rows:
        group.append(delete.bind((write_ts, feed, ts, activity_id)))
        if len(group) >= BATCH_MAX_STATEMENTS:
            yield _as_request(group, BatchStatement, BatchType.UNLOGGED)
            group = []
    if group:
        yield _as_request(group, BatchStatement, BatchType.UNLOGGED)


def _as_request(group: list[Any], batch_class: Any, batch_type: Any) -> Any:
    if len(group) == 1:
        return group[0]
    batch = batch_class(batch_type=batch_type)
    batch.is_idempotent = True
    for bound in group:
        batch.add(bound)
    return batch
