"""Reading aggregated and notification feeds, and marking notifications seen or read.

``AggregatedFeeds`` is what ``Fanout.read_aggregated``, ``Fanout.notifications``,
``Fanout.mark_seen``/``mark_read`` and ``Fanout.notification_counts`` run. Each call reads the
feed's newest ``max_length`` rows once and derives the groups (``fanout.aggregation``); a
notification feed also reads its marks (``fanout.marks``). ``unseen`` and ``unread`` are counted
then, over every group of the feed: they stay exact under concurrent writes, re-deliveries and
replays, because nothing is counted at write time that a re-delivery could count twice.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from datetime import datetime

import msgspec

from .activity import now_micros, to_micros
from .aggregation import Group, aggregate, page
from .errors import ConfigError
from .feeds import feed_id
from .grouping import RULES, GroupingRule
from .marks import ALL, Field, Marks, MarkStore, MarkWrite
from .pullmerge import MergedReader
from .settings import Settings
from .store import Key, Store


class Counts(msgspec.Struct, frozen=True, kw_only=True):
    unseen: int
    unread: int


class Notification(msgspec.Struct, frozen=True, kw_only=True):
    group: Group
    seen: bool
    read: bool


class NotificationPage(msgspec.Struct, frozen=True, kw_only=True):
    """Groups newest first with their seen/read state, the feed's counts, and the next cursor."""

    groups: tuple[Notification, ...]
    unseen: int
    unread: int
    next: Key | None


class AggregatedFeeds:
    def __init__(
        self, store: Store, settings: Settings, grouping: Mapping[str, GroupingRule] | None = None,
        reader: MergedReader | None = None,
    ) -> None:
        self.store = store
        self.settings = settings
        self.reader = reader or MergedReader(store, settings, enabled=False)  # hybrid fanout's merge (pullmerge)
        self.rules: dict[str, GroupingRule] = {kind: RULES[name] for kind, name in settings.aggregation().items()}
        self.rules.update(grouping or {})

    async def groups(self, user: str, kind: str) -> list[Group]:
        """Every group of ``user``'s feed of aggregated ``kind``, newest first."""
        rule = self.rules.get(kind)
        if rule is None:
            raise ConfigError(f"feed kind {kind!r} is not aggregated (FANOUT_AGGREGATED_KINDS: "
                              f"{', '.join(self.rules) or 'none'})")
        members = await self.reader.read(kind, user, limit=self.settings.max_length)
        return aggregate(members, rule, self.settings.aggregated_max_activities)

    async def notifications(self, user: str, kind: str, limit: int, before: Key | None) -> NotificationPage:
        groups, marks = await self._state(user, kind)
        shown = page(groups, limit, before)
        counts = _counts(groups, marks)
        return NotificationPage(
            groups=tuple(Notification(group=g, seen=marks.is_seen(g.id, g.last_ts),
                                      read=marks.is_read(g.id, g.last_ts)) for g in shown.groups),
            unseen=counts.unseen, unread=counts.unread, next=shown.next)

    async def counts(self, user: str, kind: str) -> Counts:
        return _counts(*await self._state(user, kind))

    async def mark(self, user: str, kind: str, field: Field, groups: Iterable[str] | None,
                   up_to: datetime | None = None) -> Counts:
        """Mark ``groups`` (ids; None: all) as seen or read up to their newest member, or up to
        ``up_to`` (what the user was shown: a member that landed since keeps its group unseen);
        ids no longer in the feed are ignored. Returns the counts after the marks."""
        found, marks = await self._state(user, kind)
        if groups is None:
            writes = _mark_all(found, field, now_micros())
        else:
            by_id = {g.id: g for g in found}
            writes = [MarkWrite(gid, field, by_id[gid].last_ts) for gid in dict.fromkeys(groups) if gid in by_id]
        if up_to is not None:
            cap = to_micros(up_to)
            writes = [MarkWrite(g, f, min(value, cap)) for g, f, value in writes]
        if writes:
            await self._marks().write_marks(feed_id(kind, user), writes)
        for group, _, value in writes:
            cells = marks.seen if field == "seen" else marks.read
            cells[group] = max(value, cells.get(group, value))
        return _counts(found, marks)

    async def _state(self, user: str, kind: str) -> tuple[list[Group], Marks]:
        if kind not in self.settings.notification_kinds:
            raise ConfigError(f"feed kind {kind!r} is not a notification kind (FANOUT_NOTIFICATION_KINDS: "
                              f"{', '.join(self.settings.notification_kinds) or 'none'})")
        marks = self._marks()
        groups, found = await asyncio.gather(self.groups(user, kind), marks.read_marks(feed_id(kind, user)))
        return groups, found

    def _marks(self) -> MarkStore:
        if not isinstance(self.store, MarkStore):
            raise ConfigError(f"{type(self.store).__name__} keeps no notification marks (see fanout.marks.MarkStore)")
        return self.store


def _mark_all(groups: list[Group], field: Field, now: int) -> list[MarkWrite]:
    """Marking every group of a feed (newest first): the feed's mark at the newest activity that
    is not ahead of ``now``, and a mark of its own for each group whose newest is (a producer's
    clock ahead, within ``FANOUT_MAX_FUTURE_SKEW_SECONDS``): a feed's mark that far ahead would
    take every activity of the next minutes for seen."""
    current = next((g.last_ts for g in groups if g.last_ts <= now), None)
    writes = [] if current is None else [MarkWrite(ALL, field, current)]
    return writes + [MarkWrite(g.id, field, g.last_ts) for g in groups if g.last_ts > now]


def _counts(groups: list[Group], marks: Marks) -> Counts:
    return Counts(unseen=sum(not marks.is_seen(g.id, g.last_ts) for g in groups),
                  unread=sum(not marks.is_read(g.id, g.last_ts) for g in groups))
