"""A run of follows of one follower as few driver requests (``FollowRunStore``).

``FollowGraph.apply_follows`` writes the edges of several follows of one follower and reads the
followees' user feeds. One by one that is two or three requests per edge and one per feed; here:

* the edges' ``following`` rows, all in the follower's partition, as UNLOGGED batches of at most
  ``BATCH_MAX_STATEMENTS`` rows (one partition: one mutation, exempt from the batch size warning);
  each ``followers`` row (the followee's partition) in one request, with its ``active_until``;
* the feeds in one query, ``feed IN ? PER PARTITION LIMIT ?``, split by feed afterwards.

The cells written are those of ``set_follow``, at the same timestamps, so the store's rules (the
newest write of an edge wins, an unfollow wins a tie) are unchanged.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..activity import Activity
from .batching import BATCH_MAX_STATEMENTS, _as_request
from .rows import activity_from_row


def follow_requests(s: Any, follower: str, followees: Mapping[str, int], active_until: int) -> list[Any]:
    """The requests of ``set_follow(follower, followee, True, at, active_until)`` for each
    ``followee: at`` (``s``: the prepared ``Statements``)."""
    from cassandra.query import BatchStatement, BatchType

    edges = list(followees.items())
    requests = []
    for start in range(0, len(edges), BATCH_MAX_STATEMENTS):  # the follower's partition
        part = edges[start : start + BATCH_MAX_STATEMENTS]
        requests.append(_as_request([s.follow_out.bind((at, at, follower, f)) for f, at in part],
                                    BatchStatement, BatchType.UNLOGGED))
    for followee, at in edges:  # each followee's partition: one request
        row = [s.follow_in.bind((at, followee, follower))]
        if active_until > 0:
            row.append(s.raise_active_until.bind((active_until, active_until, followee, follower)))
        requests.append(_as_request(row, BatchStatement, BatchType.UNLOGGED))
    return requests


def by_feed(feeds: Sequence[str], rows: Iterable[Sequence[Any]]) -> dict[str, list[Activity]]:
    """The rows of ``read_feeds`` (``feed`` first, then the activity's columns, each partition
    newest first) as each feed's activities; a feed without rows maps to []."""
    out: dict[str, list[Activity]] = {feed: [] for feed in feeds}
    for row in rows:
        out[row[0]].append(activity_from_row(row[1:]))
    return out
