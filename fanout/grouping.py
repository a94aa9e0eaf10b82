"""Grouping rules of aggregated feeds: which activities of a feed form one group.

A rule is a pure function of one activity: the parts of its group key. Two activities are in
one group of a feed when the rule gives them equal parts, so a group is the same whatever order
its members arrive in, and a member never moves. Built in (``FANOUT_AGGREGATED_KINDS`` names them
per feed kind; ``Fanout(grouping={kind: rule})`` plugs in any other function):

    verb_day          verb and UTC day of the activity time (Stream Framework's RecentVerbAggregator)
    verb_object_day   verb, object and UTC day (its NotificationAggregator: "5 people liked your post")
    verb_target_day   verb, target (or object when none) and UTC day ("pinned 12 items to Travel")
    verb              verb only
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Final

from .activity import Activity

#: A grouping rule: the parts of an activity's group key.
GroupingRule = Callable[[Activity], tuple[str, ...]]

_DAY_US: Final = 86_400 * 1_000_000
_SEPARATOR: Final = "\x1f"  # between the parts of a group key
_ESCAPE: Final = "\x1e"  # before a separator or an escape within a part


def _day(activity: Activity) -> str:
    return str(activity.ts // _DAY_US)


def verb_day(activity: Activity) -> tuple[str, ...]:
    return (activity.verb, _day(activity))


def verb_object_day(activity: Activity) -> tuple[str, ...]:
    return (activity.verb, activity.object, _day(activity))


def verb_target_day(activity: Activity) -> tuple[str, ...]:
    return (activity.verb, activity.target or activity.object, _day(activity))


def verb_only(activity: Activity) -> tuple[str, ...]:
    return (activity.verb,)


RULES: Final[Mapping[str, GroupingRule]] = {
    "verb_day": verb_day,
    "verb_object_day": verb_object_day,
    "verb_target_day": verb_target_day,
    "verb": verb_only,
}


def group_id(parts: tuple[str, ...]) -> str:
    """The id of the group with key ``parts``: 32 hex characters, the same in every process, and
    two keys never share one (but by a hash collision). The parts are joined by U+001F, which
    verbs and objects may hold: U+001F and U+001E in a part are escaped by a U+001E (keys without
    either keep the ids they always had)."""
    text = _SEPARATOR.join(part.replace(_ESCAPE, _ESCAPE * 2).replace(_SEPARATOR, _ESCAPE + _SEPARATOR)
                           for part in parts)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
