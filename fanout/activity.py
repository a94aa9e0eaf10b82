"""Activities and their identity.

An activity is identified by a string ``id``. A producer may choose any id (a UUID, a
database key); without one, the id is derived from the event's content - actor, verb,
object, target and time - so the same event produced twice gets the same id and lands
once. Derived ids include the actor, so two actors never collide.

Feeds are ordered by ``(ts, id)`` descending: newest first, ties broken by id. ``ts`` is
the activity time in microseconds since the epoch (UTC).
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import msgspec

# Write timestamps (microseconds) rank the writes of one timeline cell; the highest wins, a
# delete wins a tie. Three bands keep the outcome independent of arrival order:
#   plain fanout adds      write at the activity time             (< 2**55 until the year 3111)
#   follow copies/unfollow write at FOLLOW_BAND + the edge's time  (outrank any add; fanout.graph)
#   removes                write at REMOVED_WRITE_TS              (outrank everything)
# A trim deletes a key range (the newest row past the kept ones and every older row) at that row's
# activity time, and each row of it written above that time (a follow copy) at its own write time:
# a replay of a write it deleted stays off (the tie goes to the delete), a newer write (a re-follow
# copy, a rebuild) lands. One range delete, not a tombstone per row that later trims would read.
FOLLOW_BAND = 1 << 55
#: A removal wins over every insert of the same entry, whichever arrives first, so a remove that
#: overtakes its add (replays, other partitions) still wins.
REMOVED_WRITE_TS = 1 << 62

#: Every time fanout accepts (an event's ``time``, a record's timestamp) lies in
#: [MIN_TIME_US, MAX_TIME_US]: from the epoch (follow-band timestamps stay above every add) to just
#: below FOLLOW_BAND (an add never outranks a follow copy or an unfollow; the year 3111). Every
#: value derived from such a time is valid: a datetime (years 1970..3111), a Cassandra write
#: timestamp (int64) in its band.
MIN_TIME_US = 0
MAX_TIME_US = FOLLOW_BAND - 1


class Activity(msgspec.Struct, frozen=True, omit_defaults=True):
    """One activity: ``actor`` did ``verb`` to ``object`` (optionally on ``target``)."""

    id: str
    actor: str
    verb: str
    object: str
    ts: int
    target: str | None = None
    extra: dict[str, Any] | None = None
    to: tuple[str, ...] | None = None  # extra feeds it was sent to (``fanout.targets``); kept in the registry

    @property
    def key(self) -> tuple[int, str]:
        """Sort key; feeds are ordered by it, descending."""
        return (self.ts, self.id)

    @property
    def time(self) -> datetime:
        return from_micros(self.ts)


def derive_id(actor: str, verb: str, object_: str, target: str | None, ts: int) -> str:
    """A deterministic id for an event that carries none."""
    material = "\x1f".join((actor, verb, object_, target or "", str(ts))).encode()
    return hashlib.blake2b(material, digest_size=16).hexdigest()


def to_micros(moment: datetime) -> int:
    if moment.tzinfo is None:
        raise ValueError("naive datetime: give a timezone (RFC 3339 requires one)")
    delta = moment - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(ts: int) -> datetime:
    return datetime.fromtimestamp(ts // 1_000_000, UTC).replace(microsecond=ts % 1_000_000)


def now_micros() -> int:
    return to_micros(datetime.now(UTC))
