"""The in-memory twin of ``Store``: the eager default and the unit tests' database."""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Sequence

from .activity import TRIMMED_WRITE_TS, Activity
from .store import FollowerRow, Key, RegistryEntry, TimelineWrite


class _Feed:
    __slots__ = ("cells", "cleared", "floor", "live_count", "order")

    def __init__(self) -> None:
        # id -> (write_ts, activity or None for a tombstone)
        self.cells: dict[str, tuple[int, Activity | None]] = {}
        self.order: list[Activity] | None = []  # live entries newest first; None = stale
        self.live_count = 0
        self.cleared = -1  # write_ts of the newest clear_feed (a partition delete); -1: never
        self.floor: Key | None = None  # trim boundary (a range delete): older keys stay off

    def live(self) -> list[Activity]:
        if self.order is None:
            entries = [a for _, a in self.cells.values() if a is not None]
            entries.sort(key=lambda a: a.key, reverse=True)
            self.order = entries
        return self.order


def _wins(new_ts: int, new_is_delete: bool, old: tuple[int, Activity | None] | None) -> bool:
    if old is None:
        return True
    old_ts, old_value = old
    if new_ts != old_ts:
        return new_ts > old_ts
    return new_is_delete and old_value is not None  # on a tie the delete wins


class MemoryStore:
    """Dictionaries with the same last-write-wins rules as the Cassandra store."""

    def __init__(self) -> None:
        self._feeds: dict[str, _Feed] = {}
        self._registry: dict[str, RegistryEntry] = {}
        self._edges: dict[str, dict[str, tuple[int, bool]]] = {}  # followee -> follower -> (at, on)
        self._following: dict[str, dict[str, tuple[int, bool]]] = {}
        self._active_until: dict[tuple[str, str], int] = {}  # (followee, follower) -> until
        self._last_active: dict[str, int] = {}
        self.closed = False

    # timelines -------------------------------------------------------------------------
    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        for write in writes:
            feed = self._feeds.get(write.feed)
            if feed is None:
                feed = self._feeds[write.feed] = _Feed()
            if write.write_ts <= feed.cleared:
                continue  # shadowed by the partition delete (a tie goes to the delete)
            if feed.floor is not None and write.activity.key < feed.floor and write.write_ts <= TRIMMED_WRITE_TS:
                continue  # shadowed by the trim's range delete
            activity_id = write.activity.id
            old = feed.cells.get(activity_id)
            if _wins(write.write_ts, write.remove, old):
                feed.cells[activity_id] = (write.write_ts, None if write.remove else write.activity)
                was_live = old is not None and old[1] is not None
                feed.live_count += (not write.remove) - was_live
                if was_live or not write.remove:
                    feed.order = None

    async def read(
        self, feed: str, *, limit: int, before: Key | None = None, after: Key | None = None
    ) -> list[Activity]:
        state = self._feeds.get(feed)
        if state is None or limit <= 0:
            return []
        entries = state.live()
        if before is not None:
            entries = [a for a in entries if a.key < before]
        if after is not None:
            newer = [a for a in entries if a.key > after]
            return newer[-limit:]
        return entries[:limit]

    async def trim(self, feed: str, max_length: int) -> int:
        state = self._feeds.get(feed)
        if state is None or state.live_count <= max_length:
            return 0
        entries = state.live()
        doomed = entries[max_length:]
        # everything older than the oldest kept entry (all up to the newest one for 0) stays off
        floor = entries[max_length - 1].key if max_length > 0 else (entries[0].ts, entries[0].id + "\0")
        state.floor = floor if state.floor is None else max(state.floor, floor)
        for activity in doomed:
            state.cells[activity.id] = (TRIMMED_WRITE_TS, None)
        state.order = entries[:max_length]
        state.live_count = max_length
        return len(doomed)

    async def drop_timelines(self) -> None:
        self._feeds.clear()

    async def feed_ids(self) -> list[str]:
        return sorted(f for f, state in self._feeds.items() if state.live())

    async def clear_feed(self, feed: str, write_ts: int) -> None:
        state = self._feeds.get(feed)
        if state is None:
            state = self._feeds[feed] = _Feed()
        state.cleared = max(state.cleared, write_ts)
        for activity_id, old in list(state.cells.items()):
            if _wins(write_ts, True, old):
                state.live_count -= old[1] is not None
                state.cells[activity_id] = (write_ts, None)
        state.order = None

    # activity registry -----------------------------------------------------------------
    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        return self._registry.get(activity_id)

    async def put_activity(self, activity: Activity) -> None:
        entry = self._registry.get(activity.id)
        removed = entry.removed if entry is not None else False
        self._registry[activity.id] = RegistryEntry(activity, removed)

    async def mark_removed(self, activity_id: str) -> None:
        entry = self._registry.get(activity_id)
        self._registry[activity_id] = RegistryEntry(entry.activity if entry else None, True)

    # follow graph ----------------------------------------------------------------------
    async def set_follow(
        self, follower: str, followee: str, following: bool, at: int, active_until: int = 0
    ) -> None:
        edges = self._edges.setdefault(followee, {})
        old = edges.get(follower)
        if old is not None and (old[0] > at or (old[0] == at and not old[1])):
            return  # an equal or newer write already decided this edge
        edges[follower] = (at, following)
        self._following.setdefault(follower, {})[followee] = (at, following)
        if following:
            key = (followee, follower)
            self._active_until[key] = max(active_until, self._active_until.get(key, 0))

    async def following(self, user: str) -> list[str]:
        return sorted(f for f, (_, on) in self._following.get(user, {}).items() if on)

    async def followers(self, followee: str, *, page_size: int) -> AsyncIterator[list[FollowerRow]]:
        edges = self._edges.get(followee, {})
        page: list[FollowerRow] = []
        for follower in list(edges):  # the keys only: follows may change between pages
            edge = edges.get(follower)
            if edge is None or not edge[1]:
                continue
            page.append(FollowerRow(follower, self._active_until.get((followee, follower), 0)))
            if len(page) >= page_size:
                yield page
                page = []
        if page:
            yield page

    async def follower_page(self, followee: str, *, after: str | None, limit: int) -> list[str]:
        edges = self._edges.get(followee, {})
        return heapq.nsmallest(limit, (f for f, (_, on) in edges.items() if on and (after is None or f > after)))

    async def follower_count(self, followee: str) -> int:
        return sum(on for _, on in self._edges.get(followee, {}).values())

    async def last_active(self, user: str) -> int:
        return self._last_active.get(user, 0)

    async def set_active(self, user: str, active_until: int, at: int) -> None:
        self._last_active[user] = max(at, self._last_active.get(user, 0))
        for followee in await self.following(user):
            key = (followee, user)
            self._active_until[key] = max(active_until, self._active_until.get(key, 0))

    async def close(self) -> None:
        self.closed = True
