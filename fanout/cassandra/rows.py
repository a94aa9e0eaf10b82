"""How an ``Activity`` and a follow ``Edge`` map onto the CQL columns they are stored in, and back.

``target`` and ``extra`` may be null; ``extra`` is stored as JSON text (msgspec), never pickle.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

import msgspec

from ..activity import Activity
from ..store import Edge

# the columns every timeline read selects, in the order ``activity_from_row`` unpacks them
ACTIVITY_COLUMNS: Final = "ts, activity_id, actor, verb, object, target, extra"

_encoder = msgspec.json.Encoder()
_extra_decoder = msgspec.json.Decoder(dict[str, Any])


def encode_extra(extra: dict[str, Any]) -> str:
    """The ``extra`` column's text for an activity's (non-null) ``extra``."""
    return _encoder.encode(extra).decode()


def activity_from_row(row: Sequence[Any]) -> Activity:
    """The activity of a row holding ``ACTIVITY_COLUMNS``."""
    ts, activity_id, actor, verb, obj, target, extra = row
    return Activity(
        id=activity_id,
        actor=actor,
        verb=verb,
        object=obj,
        ts=ts,
        target=target,
        extra=None if extra is None else _extra_decoder.decode(extra),
    )


def decided_in(source: int | None) -> int:
    """``following.decided_in`` of an edge decided by a record of partition ``source``: the
    partition + 1, and 0 when no record decided it (the eager mode, a library call). Not a null (a
    tombstone cell, one more per edge read), and not -1: of two decisions at one write timestamp
    Cassandra keeps the greater value by its bytes, and -1's are the greatest."""
    return 0 if source is None else source + 1


def source_of(value: int | None) -> int | None:
    """The partition a ``decided_in`` value names (None: none, or a row written before the column)."""
    return value - 1 if value else None


def edge_from_row(row: Sequence[Any]) -> Edge | None:
    """An edge from its row (``following, decided_at, WRITETIME(following), decided_in,
    WRITETIME(decided_in)``); ``written`` (the write time of ``following``) stands in for
    ``decided_at`` on edges written before that column existed. ``decided_in`` (``source_of``)
    counts only when written with ``decided_at``: an agent of an earlier build, still running
    after ``migrate`` added the column, decides an edge without it."""
    following, decided_at, written, value, value_at = row
    at = decided_at if decided_at is not None else written
    source = source_of(value) if value_at == at else None
    return None if at is None else Edge(bool(following), at, source)
