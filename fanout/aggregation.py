"""Aggregated feeds: a feed's activities grouped at read time, paged by group.

Storage is the flat feed's: each activity of an aggregated feed is its own timeline row, written,
re-delivered, removed and trimmed exactly like a flat feed's, at the same write timestamps. No
group is ever read, modified and written back, so concurrent writers cannot lose a member, and
any order of chunks leaves the same rows. A read takes the feed's newest ``max_length`` rows (the
rows a trim keeps, so a read gives the same groups before and after a trim), groups them by the
kind's rule (``fanout.grouping``) and derives every count from the members:

* ``activity_count``: the group's members; ``actor_count``: their distinct actors;
* ``first_ts``/``last_ts``: the oldest and newest member's time;
* ``activities``: the newest ``max_activities`` members, newest first (the count covers all).

Groups are ordered by their newest member, newest first (``key``: its ``(ts, id)``, unique). A
cursor is the key of the last group served; the next page holds the groups whose newest member
is older. So a walk never repeats a group, and never skips one that was there when it began and
did not change: a group that gets a newer member moves to the top, where the next walk finds it,
as a new entry of a flat feed does. A group whose newest member is removed moves down to its new
newest member (and may then be served twice in one walk); a group whose members are all removed
disappears.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from .activity import Activity
from .grouping import GroupingRule, group_id
from .store import Key


class Group(msgspec.Struct, frozen=True, kw_only=True):
    """One group of an aggregated feed, derived from its members."""

    id: str  # stable: the hash of the rule's key parts
    verb: str  # the newest member's verb (every member's, for the verb rules)
    activities: tuple[Activity, ...]  # newest first, at most max_activities
    activity_count: int
    actor_count: int
    first_ts: int
    last_ts: int
    key: Key  # the newest member's (ts, id): the group's place in the feed and its cursor


class GroupPage(msgspec.Struct, frozen=True, kw_only=True):
    """Groups newest first; ``next``: the cursor of the following page (None: none)."""

    groups: tuple[Group, ...]
    next: Key | None


def aggregate(members: Iterable[Activity], rule: GroupingRule, max_activities: int) -> list[Group]:
    """The groups of ``members`` (any order), newest first."""
    by_group: dict[tuple[str, ...], list[Activity]] = {}
    for activity in members:
        by_group.setdefault(rule(activity), []).append(activity)
    groups = []
    for parts, found in by_group.items():
        found.sort(key=lambda a: a.key, reverse=True)
        groups.append(Group(
            id=group_id(parts),
            verb=found[0].verb,
            activities=tuple(found[:max_activities]),
            activity_count=len(found),
            actor_count=len({a.actor for a in found}),
            first_ts=found[-1].ts,
            last_ts=found[0].ts,
            key=found[0].key,
        ))
    groups.sort(key=lambda g: g.key, reverse=True)
    return groups


def page(groups: list[Group], limit: int, before: Key | None) -> GroupPage:
    """Up to ``limit`` of ``groups`` (newest first) whose newest member is older than ``before``."""
    after_cursor = [g for g in groups if before is None or g.key < before]
    shown = after_cursor[: max(limit, 0)]
    more = len(after_cursor) > len(shown) and bool(shown)
    return GroupPage(groups=tuple(shown), next=shown[-1].key if more else None)
