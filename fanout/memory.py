"""The in-memory twin of ``Store``: the eager default and the unit tests' database.

It keeps the Cassandra store's rules (``fanout.cassandra``): every cell is written at a write
timestamp, the newest write wins and a delete wins a tie; a trim deletes the newest row past the kept
ones and every older row at that row's activity time (a range delete: the feed's ``floors``), and each
of them written above that time (a follow copy) at its own write time. And it stays bounded the way
Cassandra does:

* a delete (a remove, an unfollow's deletes, a trim, ``clear_feed``) is remembered for
  ``grace_seconds`` (``FANOUT_MEMORY_GRACE_SECONDS``; Cassandra's ``gc_grace_seconds``, 10 days by
  default) and then forgotten, as compaction purges a tombstone: an older write arriving later
  lands again, unless the registry stops it first, as ``Fanout`` does for removed activities;
* with ``ttl_seconds`` (``FANOUT_CASSANDRA_TTL_SECONDS``, as Cassandra's ``USING TTL`` on timeline
  inserts and registry writes) an entry expires that long after its write: an expired timeline
  row is a delete at its write time (forgotten after the horizon), an expired registry entry is
  gone. Without a TTL the registry is kept, as in Cassandra, where ``removed`` is a value, not a
  tombstone: it is what stops a removed activity from coming back once the deletes are forgotten.

So 10,000 posts into a feed of ``max_length`` 10 leave the live rows plus the rows deleted within
the last horizon. Time is ``clock()`` (seconds; ``time.time`` unless a test passes its own); the
horizon is applied lazily, at the next call, in O(1) per forgotten delete. The follow graph is kept
(in Cassandra an unfollowed edge's row stays too).
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final, NamedTuple

from .activity import Activity
from .marks import MemoryMarks
from .memorygraph import MemoryGraph
from .pull import MemoryPulledAccounts
from .settings import Settings
from .store import Key, RegistryEntry, TimelineWrite
from .tracing import DEFAULT_TRACE_TTL_SECONDS, MemoryTraces

DEFAULT_GRACE_SECONDS: Final = 10 * 86_400  # Cassandra's default gc_grace_seconds

_Cell = tuple[int, Activity | None]  # (write_ts, the activity, or None for a delete)


class MemoryFootprint(NamedTuple):
    """What a ``MemoryStore`` holds: live timeline rows, remembered deletes, registry entries."""

    live: int
    tombstones: int
    registry: int


class _Feed:
    __slots__ = ("cells", "cleared", "floors", "live_count", "order")

    def __init__(self) -> None:
        self.cells: dict[str, _Cell] = {}  # activity id -> its newest write
        self.order: list[Activity] | None = []  # live entries newest first; None = stale
        self.live_count = 0
        self.cleared = -1  # write_ts of the newest clear_feed (a partition delete); -1: none
        # the trims' range deletes still remembered, oldest (and highest) first: a write at or below
        # a floor's key, at or below its time, is shadowed; a later floor as high replaces the older
        # (it covers them and is remembered longer), a lower one is kept beside them. None: none.
        self.floors: list[Key] | None = None

    def under_floor(self, key: Key, write_ts: int) -> bool:
        """Is a write of ``key`` at ``write_ts`` shadowed by a trim's range delete (a tie goes to it)?
        The highest floor decides: every other is lower, in key and in time."""
        floors = self.floors
        return floors is not None and write_ts <= floors[0][0] and key <= floors[0]

    def add_floor(self, floor: Key) -> None:
        kept = [f for f in self.floors or () if f > floor]
        kept.append(floor)
        self.floors = kept

    def live(self) -> list[Activity]:
        if self.order is None:
            entries = [a for _, a in self.cells.values() if a is not None]
            entries.sort(key=lambda a: a.key, reverse=True)
            self.order = entries
        return self.order


class _Registered:
    """A registry row: the activity and the removal flag expire apart, like two TTL'd cells."""

    __slots__ = ("activity", "activity_until", "removed_until")

    def __init__(self) -> None:
        self.activity: Activity | None = None
        self.activity_until = -math.inf
        self.removed_until = -math.inf  # removed while now < this

    def entry(self, now: float) -> RegistryEntry | None:
        activity = self.activity if now < self.activity_until else None
        removed = now < self.removed_until
        return RegistryEntry(activity, removed) if activity is not None or removed else None


def _wins(new_ts: int, new_is_delete: bool, old: _Cell | None) -> bool:
    if old is None:
        return True
    old_ts = old[0]
    if new_ts != old_ts:
        return new_ts > old_ts
    return new_is_delete  # on a tie a delete wins (and a repeated delete restarts the horizon)


class MemoryStore(MemoryGraph, MemoryMarks, MemoryPulledAccounts, MemoryTraces):
    """Dictionaries with the same last-write-wins rules as the Cassandra store, bounded by the same
    horizon and TTL (see the module docstring)."""

    def __init__(
        self,
        *,
        grace_seconds: float = DEFAULT_GRACE_SECONDS,
        ttl_seconds: float = 0,
        trace_ttl_seconds: float = DEFAULT_TRACE_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        MemoryGraph.__init__(self)  # the follow graph (fanout.memorygraph)
        MemoryMarks.__init__(self)  # notification marks (fanout.marks)
        MemoryPulledAccounts.__init__(self)  # hybrid fanout (fanout.pull)
        MemoryTraces.__init__(self, trace_ttl_seconds)  # delivery tracing (fanout.tracing)
        self.grace_seconds = grace_seconds
        self.ttl_seconds = ttl_seconds
        self.clock = clock
        self._feeds: dict[str, _Feed] = {}
        self._registry: dict[str, _Registered] = {}
        # in the order they happened: (when, feed, activity id, what was written); for a clear_feed
        # (its write_ts) and a trim's range delete (the feed's floor) the id is None
        self._deletes: deque[tuple[float, str, str | None, _Cell | int | Key]] = deque()
        self._expiring_rows: deque[tuple[float, str, str, _Cell]] = deque()  # (expires, feed, id, cell)
        self._expiring_entries: deque[tuple[float, str]] = deque()  # (expires, activity id)
        self.closed = False

    @classmethod
    def from_settings(cls, settings: Settings, *, clock: Callable[[], float] = time.time) -> MemoryStore:
        """The store with ``FANOUT_MEMORY_GRACE_SECONDS`` and ``FANOUT_CASSANDRA_TTL_SECONDS``."""
        return cls(grace_seconds=settings.memory_grace_seconds, ttl_seconds=settings.cassandra_ttl_seconds,
                   trace_ttl_seconds=settings.trace_ttl_seconds, clock=clock)

    def footprint(self) -> MemoryFootprint:
        """How much the store holds now (after forgetting what the horizon and TTLs let go)."""
        self._tick()
        live = tombstones = 0
        for state in self._feeds.values():
            live += state.live_count
            tombstones += len(state.cells) - state.live_count + (state.cleared >= 0) + len(state.floors or ())
        return MemoryFootprint(live, tombstones, len(self._registry))

    # timelines -------------------------------------------------------------------------
    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        now = self._tick()
        for write in writes:
            feed = self._feeds.get(write.feed)
            if feed is None:
                feed = self._feeds[write.feed] = _Feed()
            if write.write_ts <= feed.cleared or feed.under_floor(write.activity.key, write.write_ts):
                continue  # shadowed by the partition delete or a trim's range delete (a tie goes to the delete)
            activity_id = write.activity.id
            old = feed.cells.get(activity_id)
            if not _wins(write.write_ts, write.remove, old):
                continue
            if write.remove:
                self._delete(feed, write.feed, activity_id, write.write_ts, now)
                continue
            cell: _Cell = (write.write_ts, write.activity)
            feed.cells[activity_id] = cell
            feed.live_count += old is None or old[1] is None
            feed.order = None
            if self.ttl_seconds:
                self._expiring_rows.append((now + self.ttl_seconds, write.feed, activity_id, cell))

    async def apply_feeds(
        self, feeds: Sequence[str], activity: Activity, write_ts: int, remove: bool, *, over: int | None = None
    ) -> list[str]:
        """``apply`` of one activity's writes to ``feeds`` (the eager mode's chunks), row by row
        without a ``TimelineWrite`` each: inserts inlined; removes, and every write of a subclass
        that overrides ``apply``, through ``apply``. Returns the feeds that hold more than ``over``
        live entries afterwards (none when ``over`` is None): the store knows each feed's length."""
        limit = over if over is not None else math.inf
        if remove or type(self).apply is not MemoryStore.apply:
            await self.apply([TimelineWrite(feed, activity, write_ts, remove) for feed in feeds])
            return [f for f in dict.fromkeys(feeds) if (state := self._feeds.get(f)) and state.live_count > limit]
        full: list[str] = []
        now = self._tick()
        activity_id = activity.id
        cell: _Cell = (write_ts, activity)
        states = self._feeds
        expiring = self._expiring_rows if self.ttl_seconds else None
        for feed in feeds:
            state = states.get(feed)
            if state is None:
                state = states[feed] = _Feed()
            if write_ts <= state.cleared or (state.floors is not None and state.under_floor(activity.key, write_ts)):
                continue  # shadowed by the partition delete or a trim's range delete (a tie goes to the delete)
            cells = state.cells
            old = cells.get(activity_id)
            if old is not None:
                if old[0] >= write_ts:  # an equal or newer write (or delete) wins over this insert
                    continue
                state.live_count += old[1] is None
            else:
                state.live_count += 1
            cells[activity_id] = cell
            state.order = None
            if state.live_count > limit:
                full.append(feed)
            if expiring is not None:
                expiring.append((now + self.ttl_seconds, feed, activity_id, cell))
        return list(dict.fromkeys(full))  # a feed named twice in the chunk: once

    async def read(
        self, feed: str, *, limit: int, before: Key | None = None, after: Key | None = None
    ) -> list[Activity]:
        self._tick()
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
        now = self._tick()
        state = self._feeds.get(feed)
        max_length = max(max_length, 0)
        if state is None or state.live_count <= max_length:
            return 0
        entries = state.live()
        doomed = entries[max_length:]
        floor = doomed[0].key  # every trim writes its range delete, remembered from now on
        state.add_floor(floor)
        self._deletes.append((now, feed, None, floor))
        for activity in doomed:
            write_ts = state.cells[activity.id][0]
            if state.under_floor(activity.key, write_ts):  # under the range delete: no tombstone of its own
                del state.cells[activity.id]
                state.live_count -= 1
            else:  # a follow copy, written above: deleted at its own write time, a newer write lands
                self._delete(state, feed, activity.id, write_ts, now)
        state.order = entries[:max_length]
        return len(doomed)

    async def drop_timelines(self) -> None:
        self._feeds.clear()
        self._deletes.clear()
        self._expiring_rows.clear()

    async def feed_ids(self) -> list[str]:
        self._tick()
        return sorted(f for f, state in self._feeds.items() if state.live_count)

    async def clear_feed(self, feed: str, write_ts: int) -> None:
        now = self._tick()
        state = self._feeds.get(feed)
        if state is None:
            state = self._feeds[feed] = _Feed()
        if write_ts < state.cleared:
            return
        state.cleared = write_ts
        self._deletes.append((now, feed, None, write_ts))
        for activity_id, (cell_ts, _) in list(state.cells.items()):
            if cell_ts <= write_ts:  # shadowed by ``cleared`` from now on
                del state.cells[activity_id]
        state.live_count = sum(a is not None for _, a in state.cells.values())
        state.order = None

    def _delete(self, state: _Feed, feed: str, activity_id: str, write_ts: int, now: float) -> None:
        """Delete one row at ``write_ts`` (the caller checked that the delete wins)."""
        old = state.cells.get(activity_id)
        if old is not None and old[1] is not None:
            state.live_count -= 1
            state.order = None
        tombstone: _Cell = (write_ts, None)
        state.cells[activity_id] = tombstone
        self._deletes.append((now, feed, activity_id, tombstone))

    def _tick(self) -> float:
        """Now, after expiring what the TTL and forgetting what the grace horizon let go."""
        now = self.clock()
        rows = self._expiring_rows
        while rows and rows[0][0] <= now:
            expired_at, feed, activity_id, cell = rows.popleft()
            state = self._feeds.get(feed)
            if state is not None and state.cells.get(activity_id) is cell:  # not written since
                self._delete(state, feed, activity_id, cell[0], expired_at)
        entries = self._expiring_entries
        while entries and entries[0][0] <= now:
            expired_id = entries.popleft()[1]
            registered = self._registry.get(expired_id)
            if registered is not None and registered.entry(now) is None:
                del self._registry[expired_id]
        self._expire_traces(now)
        self._forget(now - self.grace_seconds)
        return now

    def _forget(self, horizon: float) -> None:
        """Drop the deletes made at or before ``horizon`` (unless written over since)."""
        deletes = self._deletes
        while deletes and deletes[0][0] <= horizon:
            _, feed, activity_id, written = deletes.popleft()
            state = self._feeds.get(feed)
            if state is None:
                continue
            if activity_id is None:
                if state.cleared == written:
                    state.cleared = -1
                elif state.floors is not None and any(f is written for f in state.floors):  # not replaced
                    state.floors = [f for f in state.floors if f is not written] or None
            elif state.cells.get(activity_id) is written:
                del state.cells[activity_id]
            if not state.cells and state.cleared < 0 and state.floors is None:
                del self._feeds[feed]

    # activity registry -----------------------------------------------------------------
    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        now = self._tick()
        registered = self._registry.get(activity_id)
        return None if registered is None else registered.entry(now)

    async def put_activity(self, activity: Activity) -> None:
        registered = self._registered(activity.id)
        registered.activity = activity
        registered.activity_until = self._until(activity.id)

    async def mark_removed(self, activity_id: str) -> None:
        self._registered(activity_id).removed_until = self._until(activity_id)

    def _registered(self, activity_id: str) -> _Registered:
        now = self._tick()
        registered = self._registry.get(activity_id)
        if registered is None or registered.entry(now) is None:
            registered = self._registry[activity_id] = _Registered()
        return registered

    def _until(self, activity_id: str) -> float:
        """When a registry write made now expires (never without a TTL)."""
        if not self.ttl_seconds:
            return math.inf
        until = self.clock() + self.ttl_seconds
        self._expiring_entries.append((until, activity_id))
        return until

    async def close(self) -> None:
        self.closed = True
