"""Planning the ``to`` targets of an activity: target feeds by priority, in chunks.

The chunks are the followers' chunk messages (same topics, same operation and write timestamp),
so a target feed is written, re-checked against the registry and removed exactly as a follower's
feed is. A target's priority is its user's activity, as for a follower: HIGH when the user was
active (``Store.last_active``) within the active window, else LOW. A target is planned once per
activity (duplicates collapse) and feeds go ``chunk_size`` to a chunk.
"""

from __future__ import annotations

from collections.abc import Iterator

import msgspec

from .activity import Activity
from .followers import Priority
from .store import Store
from .targets import split_target


def placed(activity: Activity) -> Activity:
    """The activity as feeds hold it: without ``to`` (the registry keeps it, for removes)."""
    return activity if activity.to is None else msgspec.structs.replace(activity, to=None)


async def target_chunks(
    store: Store, activity: Activity, now: int, window: int, chunk_size: int
) -> Iterator[tuple[Priority, list[str]]]:
    """The chunks of target feeds of ``activity`` (HIGH first): ``(priority, feeds)``."""
    by_priority: dict[Priority, list[str]] = {Priority.HIGH: [], Priority.LOW: []}
    active: dict[str, bool] = {}
    for target in dict.fromkeys(activity.to or ()):
        user = split_target(target)[1]
        if user not in active:
            active[user] = await store.last_active(user) + window > now
        by_priority[Priority.HIGH if active[user] else Priority.LOW].append(target)
    return (
        (priority, feeds[start : start + chunk_size])
        for priority, feeds in by_priority.items()
        for start in range(0, len(feeds), chunk_size)
    )
