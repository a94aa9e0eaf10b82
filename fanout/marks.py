"""Seen and read marks of notification feeds: what a store keeps, and what they mean.

A mark is a watermark on activity time, kept per feed for one group (``group`` = its id) or for
all groups (``group`` = ``ALL``): a group is *seen* when its newest member is not newer than the
larger of its own seen mark and the feed's; the same for *read* (marking read marks seen too).
Marks only grow: a store keeps the largest value written to each mark (Cassandra: the value is
the write timestamp, so last-write-wins is max-wins; no read-modify-write), so concurrent marks,
re-sent marks and any order of marks and deliveries end the same. A mark's value is the newest
member time the reader saw (``fanout.notifications``), not a clock: a later activity makes its
group unseen again, one delivered late but older than what was marked stays seen.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal, NamedTuple, Protocol, runtime_checkable

ALL: Final = ""  # the group id of the feed-wide mark (group ids are 32 hex characters)
Field = Literal["seen", "read"]


class MarkWrite(NamedTuple):
    """Raise mark ``field`` of ``group`` (``ALL``: every group) of a feed to ``value``."""

    group: str
    field: Field
    value: int


class Marks(NamedTuple):
    """A feed's marks: ``seen``/``read`` by group id (``ALL`` for the feed-wide ones)."""

    seen: dict[str, int]
    read: dict[str, int]

    def is_seen(self, group: str, last_ts: int) -> bool:
        return last_ts <= max(self.seen.get(group, -1), self.seen.get(ALL, -1), self.read.get(group, -1),
                              self.read.get(ALL, -1))

    def is_read(self, group: str, last_ts: int) -> bool:
        return last_ts <= max(self.read.get(group, -1), self.read.get(ALL, -1))


@runtime_checkable
class MarkStore(Protocol):
    """What notification feeds need from a store besides timelines (both stores implement it)."""

    async def read_marks(self, feed: str) -> Marks: ...

    async def write_marks(self, feed: str, writes: Sequence[MarkWrite]) -> None:
        """Raise each mark to its value (a lower value changes nothing); idempotent."""


class MemoryMarks:
    """``MarkStore`` in memory: the largest value of each mark (a mixin of ``MemoryStore``)."""

    def __init__(self) -> None:
        self._marks: dict[str, Marks] = {}

    async def read_marks(self, feed: str) -> Marks:
        marks = self._marks.get(feed)
        return Marks({}, {}) if marks is None else Marks(dict(marks.seen), dict(marks.read))

    async def write_marks(self, feed: str, writes: Sequence[MarkWrite]) -> None:
        marks = self._marks.setdefault(feed, Marks({}, {}))
        for group, field, value in writes:
            cells = marks.seen if field == "seen" else marks.read
            cells[group] = max(value, cells.get(group, value))
