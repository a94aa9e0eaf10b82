"""A run of follows of one follower as few driver requests (``FollowRunStore``).

``FollowGraph.apply_follows`` writes the edges of several follows of one follower and reads the
followees' user feeds. One by one that is two or three requests per edge and one per feed; here:

* the edges' rows, each partition's rows together (the follower's ``following`` rows, then each
  followee's ``followers`` row with its ``active_until``), grouped by replica set (the driver's
  token map; on one node, every partition) into UNLOGGED batches of at most
  ``REPLICA_BATCH_ROWS`` rows and ``REPLICA_BATCH_MAX_BYTES``, cut between partitions where a
  partition fits: a run of ten follows is one request on one node, not eleven (the driver's
  CPU per request is most of a follows agent's, issue 12). The partitions of a batch are within
  ``unlogged_batch_across_partitions_warn_threshold`` of the project's cassandra.yaml (64), as
  for the writers' batches (``batching``);
* the feeds in one query, ``feed IN ? PER PARTITION LIMIT ?``, split by feed afterwards.

The cells written are those of ``set_follow``, at the same timestamps, so the store's rules (the
newest write of an edge wins, an unfollow wins a tie) are unchanged.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from ..activity import Activity
from .batching import REPLICA_BATCH_MAX_BYTES, REPLICA_BATCH_ROWS, ReplicaKey, _as_request, _runs
from .rows import activity_from_row, decided_in


def follow_requests(
    s: Any, follower: str, followees: Mapping[str, int], active_until: int, source: int | None = None, *,
    replicas: ReplicaKey | None = None,
) -> list[Any]:
    """The requests of ``set_follow(follower, followee, True, at, active_until, source=source)``
    for each ``followee: at`` (``s``: the prepared ``Statements``; ``replicas``: a partition key's
    replica set, None: one node): ``follow_groups``, a batch each (a lone row: a plain statement)."""
    from cassandra.query import BatchStatement, BatchType

    groups = follow_groups(s, follower, followees, active_until, source, replicas=replicas)
    return [_as_request(group, BatchStatement, BatchType.UNLOGGED) for group in groups]


def follow_groups(
    s: Any, follower: str, followees: Mapping[str, int], active_until: int, source: int | None = None, *,
    replicas: ReplicaKey | None = None,
) -> list[list[Any]]:
    """The bound rows of ``follow_requests``, grouped as its batches."""
    out_size = 32 + len(follower)
    # (partition key, its rows with sizes): the follower's first, cut by ``partition_runs`` if too big
    value = decided_in(source)
    out = [(s.follow_out.bind((at, at, value, follower, f)), out_size + len(f)) for f, at in followees.items()]
    partitions = [(follower, out)]
    for followee, at in followees.items():  # each followee's partition
        size = 24 + len(followee) + len(follower)
        rows = [(s.follow_in.bind((at, followee, follower)), size)]
        if active_until > 0:
            rows.append((s.raise_active_until.bind((active_until, active_until, followee, follower)), size + 16))
        partitions.append((followee, rows))
    by_set: dict[Hashable, list[list[tuple[Any, int]]]] = {}
    for key, rows in partitions:
        by_set.setdefault(None if replicas is None else replicas(key), []).append(rows)
    return [
        group
        for set_rows in by_set.values()
        for group in partition_runs(set_rows, REPLICA_BATCH_ROWS, REPLICA_BATCH_MAX_BYTES)
    ]


def partition_runs(
    partitions: Iterable[Sequence[tuple[Any, int]]], max_rows: int, max_bytes: int
) -> Iterator[list[Any]]:
    """Partitions' (statement, size) rows cut into runs of at most ``max_rows`` and ``max_bytes``,
    each partition's rows in one run where they fit in one (a bigger partition: ``_runs`` of its
    rows, the last of them continued by the next partitions)."""
    group: list[Any] = []
    size = 0
    for rows in partitions:
        cost = sum(c for _, c in rows)
        if group and (len(group) + len(rows) > max_rows or size + cost > max_bytes):
            yield group
            group, size = [], 0
        if len(rows) <= max_rows and cost <= max_bytes:
            group += [statement for statement, _ in rows]
            size += cost
            continue
        *full, group = _runs(rows, max_rows, max_bytes)  # group was empty: the partition alone
        yield from full
        size = sum(c for _, c in rows[len(rows) - len(group) :])
    if group:
        yield group


def by_feed(feeds: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, list[Activity]]:
    """The rows of ``read_feeds`` (``feed`` first, then the activity's columns, each partition
    newest first) as each feed's activities; a feed without rows maps to []."""
    out: dict[str, list[Activity]] = {feed: [] for feed in feeds}
    for row in rows:
        out[row[0]].append(activity_from_row(row[1:]))
    return out
