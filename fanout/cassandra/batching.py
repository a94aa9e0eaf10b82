"""Timeline writes as driver requests: one bound statement per write, or UNLOGGED batches per feed.

``write_mode`` picks the strategy (``WRITE_MODES``; measured in the package docstring):

* ``"concurrent"``: one single-row statement per write.
* ``"replica_batch"`` (the default): the writes of a call grouped by replica set (the driver's
  token map; on one node, every write), each set's writes feed by feed, into runs of at most
  ``REPLICA_BATCH_ROWS`` rows and ``REPLICA_BATCH_MAX_BYTES``: one UNLOGGED batch a run, so the
  client pays one request per ~40 rows and the server still sees each feed's rows together.
* ``"partition_batch"``: the writes of a call grouped by feed, in their order, into runs of at
  most ``BATCH_MAX_STATEMENTS`` rows and ``BATCH_MAX_BYTES`` of values; a run becomes one UNLOGGED
  batch (one request, one mutation of one partition), a lone write a plain statement.

The grouping is pure: ``bound_writes`` and ``feed_groups`` need prepared statements (anything with
``bind``), no server.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from typing import Any, Final

from ..store import TimelineWrite
from .binding import add_rows, real
from .rows import encode_extra

WRITE_MODES: Final = ("concurrent", "partition_batch", "replica_batch")
# Single-partition batches are exempt from batch_size_warn/fail_threshold (CASSANDRA-10876,
# checked on 5.0.7: a 60 KiB one-feed batch neither warns nor fails); these caps only keep each
# request small enough to spread over the in-flight slots (16 KiB/100 measured best of 4/16/64 KiB).
BATCH_MAX_BYTES: Final = 16 * 1024
BATCH_MAX_STATEMENTS: Final = 100
# A multi-partition batch counts against batch_size_warn_threshold and
# unlogged_batch_across_partitions_warn_threshold: services/cassandra/cassandra.yaml.in sets them
# above these caps (64 KiB, 64 partitions), so no batch logs a WARN; 5.0's defaults (5 KiB, 10)
# would warn, and its 50 KiB fail threshold stays above REPLICA_BATCH_MAX_BYTES with the overhead.
# 40 rows: the driver's CPU per row stops falling past 25-40 rows a request (issue 12).
REPLICA_BATCH_ROWS: Final = 40
REPLICA_BATCH_MAX_BYTES: Final = 16 * 1024
ROWS_IN_FLIGHT: Final = 2_000  # a call's batched rows awaiting acknowledgement (50 x 40-row batches)

ReplicaKey = Callable[[str], Hashable]  # a feed -> its replica set (equal keys: the same nodes)


def timeline_requests(mode: str, writes: Sequence[TimelineWrite], *, insert: Any, delete: Any) -> Iterator[Any]:
    """The requests that apply ``writes`` in write mode ``mode`` (``insert``/``delete``: the prepared
    timeline statements; ``replica_batch`` as if on one node), produced lazily so that a failed
    call stops binding."""
    if mode == "replica_batch":
        yield from replica_requests(writes, insert=insert, delete=delete, replicas=None)
    elif mode == "partition_batch":
        from cassandra.query import BatchStatement, BatchType

        for group in feed_groups(writes, insert=insert, delete=delete):
            yield _as_request(group, BatchStatement, BatchType.UNLOGGED)
    else:
        for bound, _ in bound_writes(writes, insert=insert, delete=delete):
            yield real(bound)


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
    for feed_writes in _by_feed(writes).values():
        yield from _runs(bound_writes(feed_writes, insert=insert, delete=delete), BATCH_MAX_STATEMENTS, BATCH_MAX_BYTES)


def replica_groups(
    writes: Sequence[TimelineWrite], *, insert: Any, delete: Any, replicas: ReplicaKey
) -> Iterator[list[Any]]:
    """The bound writes by replica set (in order of first appearance), each set's writes feed by
    feed (every feed's writes together, in their order), cut into runs of at most
    ``REPLICA_BATCH_ROWS`` rows and ``REPLICA_BATCH_MAX_BYTES`` of values: one UNLOGGED batch each,
    which one coordinator that holds every row applies (a lone row: a plain statement). A feed
    with ``REPLICA_BATCH_ROWS`` or more rows (a follow's copy-in, a rebuild) goes first, in
    single-partition batches of ``feed_groups``' caps (exempt from the batch thresholds)."""
    by_set: dict[Hashable, list[TimelineWrite]] = {}
    for feed, feed_writes in _by_feed(writes).items():
        if len(feed_writes) >= REPLICA_BATCH_ROWS:  # a follow's copy-in: single-partition batches
            yield from _runs(bound_writes(feed_writes, insert=insert, delete=delete), BATCH_MAX_STATEMENTS,
                             BATCH_MAX_BYTES)
        else:
            by_set.setdefault(replicas(feed), []).extend(feed_writes)
    for set_writes in by_set.values():
        bound = bound_writes(set_writes, insert=insert, delete=delete)
        yield from _runs(bound, REPLICA_BATCH_ROWS, REPLICA_BATCH_MAX_BYTES)


def _by_feed(writes: Sequence[TimelineWrite]) -> dict[str, list[TimelineWrite]]:
    by_feed: dict[str, list[TimelineWrite]] = {}
    for w in writes:
        by_feed.setdefault(w.feed, []).append(w)
    return by_feed


def _runs(bound: Iterable[tuple[Any, int]], max_rows: int, max_bytes: int) -> Iterator[list[Any]]:
    """Cut (statement, size) pairs into runs of at most ``max_rows`` and ``max_bytes`` (a lone
    bigger statement: a run of its own), cutting only where the next one would break a cap."""
    group: list[Any] = []
    size = 0
    for statement, cost in bound:
        if group and (size + cost > max_bytes or len(group) >= max_rows):
            yield group
            group, size = [], 0
        group.append(statement)
        size += cost
    if group:
        yield group


def replica_requests(
    writes: Sequence[TimelineWrite], *, insert: Any, delete: Any, replicas: ReplicaKey | None
) -> Iterator[Any]:
    """``replica_batch``'s requests (``replicas``: a feed's replica set; None: one node), lazily."""
    from cassandra.query import BatchStatement, BatchType

    for group in replica_groups(writes, insert=insert, delete=delete, replicas=replicas or _one_set):
        yield _as_request(group, BatchStatement, BatchType.UNLOGGED)


def _one_set(feed: str) -> Hashable:
    return None


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
        return real(group[0])
    batch = batch_class(batch_type=batch_type)
    batch.is_idempotent = True
    return add_rows(batch, group)  # rows after the first serialized without a BoundStatement each
