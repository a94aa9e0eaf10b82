"""The persistence contract: timelines, the activity registry and the follow graph.

One Protocol, several backends (``MemoryStore`` in ``fanout.memory``, ``CassandraStore`` in
``fanout.cassandra``); one contract test suite runs against all of them.

Every write carries a *write timestamp* and the newest write of a cell wins, deletes on a
tie (Cassandra's rule, which the memory twin copies). That makes every write idempotent and
the end state independent of the order in which writes arrive:

* adds write at the activity time, removes at ``REMOVED_WRITE_TS`` (a remove always wins),
* follow copies and unfollow deletes write at ``FOLLOW_BAND`` + the edge timestamp of their event,
* a trim deletes a key range, the newest row past the kept ones and every older row, at that
  row's activity time, and each row of it written above that time (a follow copy) at its own
  write time: a replay stays off, a newer write lands, and later trims do not read a tombstone per
  trimmed row,
* follow edges are written at that edge timestamp, which the core derives from the log
  (``fanout.graph``): the store keeps it, and ``follow_edge`` reads it back.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection, Mapping, Sequence
from typing import NamedTuple, Protocol, runtime_checkable

from .activity import Activity
from .tracing import ChunkLanded, PlannedChunks

Key = tuple[int, str]  # (ts, activity id): feeds are ordered by it, descending


class TimelineWrite(NamedTuple):
    """Put ``activity`` into ``feed`` (or delete it when ``remove``) at ``write_ts``."""

    feed: str
    activity: Activity
    write_ts: int
    remove: bool = False


class RegistryEntry(NamedTuple):
    activity: Activity | None  # None when only the removal is known (it overtook the add)
    removed: bool


class Edge(NamedTuple):
    """A follow edge as the store holds it: the newest write decides it."""

    following: bool
    at: int  # the write timestamp of the event that decided the edge (the newest one written)
    #: the partition of ``follows`` whose record decided it (None: not a record: the eager mode,
    #: a library call, a rebuild, or an edge written before fanout kept it)
    source: int | None = None

    def decided(self) -> tuple[bool, int]:
        """What the edge says, without where it came from: ``(following, at)``."""
        return self.following, self.at


PriorityPage = tuple[list[str], list[str]]  # a page of followers split: (HIGH ids, LOW ids)


class FollowerRow(NamedTuple):
    follower: str
    active_until: int  # microseconds; the follower counts as active (HIGH) before this time


class PullState(NamedTuple):
    """A pulled account (hybrid fanout, ``fanout.pull``): reads merge its user-feed entries at or
    after ``since``; ``leaving`` is 0 while it is pulled, else when it crossed back down."""

    since: int  # microseconds (an activity time)
    leaving: int = 0


@runtime_checkable
class Store(Protocol):
    """What fanout needs from a database. All methods are safe to call concurrently."""

    # timelines -------------------------------------------------------------------------
    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        """Apply the writes (any order, any mix of feeds); return once all are acknowledged."""

    async def read(
        self, feed: str, *, limit: int, before: Key | None = None, after: Key | None = None
    ) -> list[Activity]:
        """Newest first. ``before``: only entries older than that key; ``after``: only newer
        ones (the ``limit`` closest to the cursor, still newest first)."""

    async def trim(self, feed: str, max_length: int) -> int:
        """Delete all but the newest ``max_length`` entries (see above: a key range at the activity
        time of its newest entry, and the entries of it written above that time each at its own);
        return how many were deleted, or fewer (a lower bound: Cassandra counts the rows it read, one
        page past the kept ones; the range delete takes the rest unread)."""

    async def drop_timelines(self) -> None:
        """Delete every timeline entry (used before a full replay)."""

    async def feed_ids(self) -> list[str]:
        """Every feed that holds at least one entry, sorted (snapshots, tests, tools)."""

    async def clear_feed(self, feed: str, write_ts: int) -> None:
        """Delete every entry of ``feed`` written before ``write_ts`` (a partition delete)."""

    # activity registry -----------------------------------------------------------------
    async def get_activity(self, activity_id: str) -> RegistryEntry | None: ...

    async def put_activity(self, activity: Activity) -> None: ...

    async def mark_removed(self, activity_id: str) -> None: ...

    # follow graph ----------------------------------------------------------------------
    async def set_follow(
        self, follower: str, followee: str, following: bool, at: int, active_until: int = 0, *,
        source: int | None = None,
    ) -> None:
        """Record a follow (``following=True``) or unfollow written at timestamp ``at``, decided by
        a record of partition ``source`` (``Edge.source``): the newest write of an edge wins, an
        unfollow wins a tie. A new edge starts with the follower's current ``active_until``."""

    async def following(self, user: str) -> list[str]: ...

    async def follow_edge(self, follower: str, followee: str) -> Edge | None:
        """The edge and the timestamp it was decided at; None if no event ever wrote it."""

    async def follow_edges(self, follower: str, followees: Collection[str] | None = None) -> dict[str, Edge]:
        """Every edge of ``follower`` (followees followed and unfollowed), by followee; with
        ``followees``, only the edges to those (one read of the follower's partition)."""

    def followers(self, followee: str, *, page_size: int) -> AsyncIterator[list[FollowerRow]]:
        """Stream the followers in pages; never loads them all at once."""

    async def unfollowed(self, followee: str, followers: Collection[str]) -> dict[str, int]:
        """Those of ``followers`` whose edge to ``followee`` is off now (an unfollow decided it
        last), each with the timestamp it was decided at (a store may forget an unfollow after a
        horizon: Cassandra as long as the chunk topics keep a chunk)."""

    async def follower_page(self, followee: str, *, after: str | None, limit: int) -> list[str]:
        """Up to ``limit`` current followers of ``followee``, ascending by id, after ``after``."""

    async def follower_count(self, followee: str) -> int:
        """How many users follow ``followee`` now."""

    async def last_active(self, user: str) -> int:
        """When ``user`` was last seen active (0 if never)."""

    async def set_active(self, user: str, active_until: int, at: int) -> None:
        """Record ``user`` as active until ``active_until`` in all their follow edges."""

    # pulled accounts (hybrid fanout: fanout.pull, fanout.pullmerge) ----------------------
    async def pull_state(self, account: str) -> PullState | None:
        """The account's state, None when it is pushed."""

    async def pulled_accounts(self) -> dict[str, PullState]:
        """Every pulled (or leaving) account: few, the accounts over the pull threshold."""

    async def set_pull_state(self, account: str, state: PullState | None) -> None:
        """Write the account's state (None: pushed, merged no more)."""

    # delivery tracing (fanout.tracing) ------------------------------------------------
    async def record_plan(self, plans: Sequence[PlannedChunks]) -> None:
        """Record what was planned for an activity's op, per priority (a repeat overwrites)."""

    async def record_landed(self, landed: Sequence[ChunkLanded]) -> None:
        """Record chunks whose rows were acknowledged: one record per (activity, op, chunk); a
        repeat overwrites (a re-delivered chunk counts once)."""

    async def delivery(self, activity_id: str) -> tuple[list[PlannedChunks], list[ChunkLanded]]:
        """Every plan and landing record of ``activity_id``."""

    # lifecycle -------------------------------------------------------------------------
    async def close(self) -> None: ...


def class_defines(store: object, method: str) -> bool:
    """Whether ``store``'s class defines ``method`` (the fast paths below are taken only then: a
    wrapper forwarding lookups with ``__getattr__`` keeps seeing every ``apply``/``followers``)."""
    return callable(getattr(type(store), method, None))


class FeedColumnStore(Protocol):
    """A store that also takes one activity's writes to many feeds as columns, with no
    ``TimelineWrite`` per row (``MemoryStore``: the eager mode's fast path). The same rules as
    ``apply`` of ``[TimelineWrite(feed, activity, write_ts, remove) for feed in feeds]``; it
    returns the feeds holding more than ``over`` live entries afterwards (a store that knows
    its feeds' lengths: the writer trims those instead of counting inserts)."""

    async def apply_feeds(
        self, feeds: Sequence[str], activity: Activity, write_ts: int, remove: bool, *, over: int | None = None
    ) -> list[str]: ...


class FollowRunStore(Protocol):
    """A store that also applies a run of follows of one follower in fewer requests
    (``FollowGraph.apply_follows``; the Cassandra store). Without it the graph makes the single
    calls: ``set_follow`` per edge, ``read`` per feed."""

    async def set_follows(
        self, follower: str, followees: Mapping[str, int], active_until: int = 0, *, source: int | None = None
    ) -> None:
        """``set_follow(follower, followee, True, at, active_until, source=source)`` of each ``followee: at``."""

    async def read_feeds(self, feeds: Sequence[str], *, limit: int) -> dict[str, list[Activity]]:
        """``read(feed, limit=limit)`` of each feed (newest first), by feed."""


class PrioritySplitStore(Protocol):
    """A store that also splits a followee's follower pages by ``active_until > now`` itself,
    with no ``FollowerRow`` per follower (``MemoryStore``): ``ActiveWindowPolicy`` uses it."""

    def priority_pages(self, followee: str, now: int, page_size: int) -> AsyncIterator[PriorityPage]: ...
