"""Follow, unfollow and rebuild: the follow graph and the timeline writes it decides.

Order by the log, not by clocks
    The events of one follower are keyed to one partition of ``follows``: their order there is the
    truth. Each edge keeps the timestamp of the event that decided it and the partition its record
    came from (``Edge.at``, ``Edge.source``). An event in order with that decision
    (``in_order_after``: a record of the same partition, which the log puts after it) is written
    at ``max(clock, stored + 1)``, a hybrid logical clock per edge: the later event of the
    partition always wins, whatever the producers' clocks say, and a re-delivery or a replay,
    which apply the partition again in order, end in the same state. An event of another partition
    (a producer under another key, another client's partitioner for the same follower, partitions
    added to the topic) is in no order with it and is ordered as a replay's merge orders the two:
    by record timestamp, then, in one millisecond, by partition (``edge_timestamp``); unless it
    comes later it changes nothing and copies nothing, and if it does it is written after the
    stored decision. Live and replayed, in whatever order the partitions are applied, the same
    record decides. (Two decisions written at one timestamp, which only a retry of a library call
    writes now, settle cell by cell, as Cassandra settles them: an unfollow wins, and the greater
    partition.) An edge without a source (written by the eager mode, a library call, or before
    fanout kept it) takes the caller's word: a record keyed by its follower is in order. The clock
    is the Kafka record timestamp in the pipeline and the process clock in the eager mode; an
    event's ``time`` field orders nothing.

Whatever decides the edge decides the copy
    The edge, a follow's copies and an unfollow's deletes are written at that one timestamp
    (copies and deletes at ``FOLLOW_BAND`` + it, above every fanout add), so the store's rule for
    the edge (the newest write wins, an unfollow wins a tie) is also the rule for the copies. One
    race is left: another decision of the same edge while a follow copies (an event of another
    partition, a rebuild). An unfollow among those may scan the follower's feed before the copies
    land and miss them. So a follow reads its edge again once its copies are acknowledged, and if
    another decision came in, it takes its copies back (deletes at its own timestamp, which win
    the tie). A decision made after that read scans a feed that already holds the copies, or (a
    follow) writes its own copies above them.

Rebuild is what a replay of the user's follows gives
    ``rebuild`` re-applies each current follow as a replay of its latest follow would (at the
    edge's timestamp + 1, so an unfollow still in flight, which bumps above it, wins) and deletes
    every other entry of the timeline at the timestamp its author's edge was decided at: no later
    fanout add can bring it back, a later follow of that author can. Unlike a trim, nothing is
    lost for good: a rebuild fills a timeline from its followees' user feeds, below earlier trims.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import cast

from .activity import FOLLOW_BAND, Activity
from .feeds import feed_id
from .settings import Settings
from .settling import all_settled, result
from .store import Edge, FollowRunStore, Key, Store, TimelineWrite, class_defines
from .writer import TimelineWriter

_DAY_US = 86_400 * 1_000_000
_PAGE = 5000  # entries a read of a whole feed asks for at a time (one page of the Cassandra store's reads)
#: How many of a followee's newest activities an unfollow deletes even if they are not (yet) in
#: the follower's feed: chunks of these may still be in flight.
UNFOLLOW_IN_FLIGHT = 100
#: A run's follows copy in up to this many rows per writer call (consecutive follows together; a
#: bigger copy alone): small copies share requests, while the writer's trim rounds, each scanning
#: the rows still pending, stay few per call (one call for 64 follows x 5,000 copies was quadratic).
COPY_WRITE_ROWS = 400


def in_order_after(stored: Edge | None, keyed: bool, partition: int | None) -> bool:
    """Whether an event comes after the ``stored`` decision in the log: a record of the partition
    that decided it (``partition``; None: not a record, the eager mode's calls of one follower,
    which are applied in order); without a stored source, a record ``keyed`` by its follower."""
    if partition is None or stored is None or stored.source is None:
        return keyed
    return stored.source == partition


def edge_timestamp(
    clock: int, stored: Edge | None, *, in_order: bool, following: bool, partition: int | None = None
) -> int | None:
    """The timestamp a follow (``following``) or unfollow event, a record of ``partition``,
    decides its edge at, or None when it lost.

    ``in_order``: the event comes after the stored decision in the log (``in_order_after``). A
    record of another partition than the decision's is ordered as a replay's merge orders the two
    (``agents/replay_merge.py``: by record timestamp, a millisecond, then by partition): it wins
    when its millisecond is later, or the same and its partition greater (a decision of no
    partition counting as the least), and is then written after the decision, so that live and
    replayed, in whatever order the partitions are applied, the same record decides. An event that
    is no record (a library call told ``in_order=False``) wins when newer, or when the stored
    decision is its own (the same op at its clock, written by an earlier attempt that failed
    before its copies or deletes were acknowledged).
    """
    if stored is None:
        return clock
    if in_order:
        return max(clock, stored.at + 1)
    if partition is not None:
        theirs = (stored.at // 1000, -1 if stored.source is None else stored.source)
        return max(clock, stored.at + 1) if (clock // 1000, partition) > theirs else None
    return clock if clock > stored.at or stored.decided() == (following, clock) else None


class FollowGraph:
    """Follows and unfollows applied to the graph and the follower's timelines; rebuilds."""

    def __init__(self, store: Store, settings: Settings, writer: TimelineWriter) -> None:
        self.store = store
        self.settings = settings
        self.writer = writer
        self._window = int(settings.active_window_days * _DAY_US)
        self._runs = cast(FollowRunStore, store) if class_defines(store, "set_follows") else None

    async def apply(
        self, follower: str, followee: str, following: bool, clock: int, *, keyed: bool, partition: int | None = None
    ) -> int:
        """Apply one follow (``following``) or unfollow event ordered by ``clock``, a record of
        ``partition`` (None: not a record), ``keyed`` by its follower (``in_order_after``);
        returns the entries copied (or removed), 0 when the event lost to a newer decision."""
        if following:  # both reads at once: one round trip
            edge_read, active_read = await asyncio.gather(
                self.store.follow_edge(follower, followee), self.store.last_active(follower), return_exceptions=True
            )
            stored, last = result(edge_read), result(active_read)
        else:
            stored, last = await self.store.follow_edge(follower, followee), 0
        in_order = in_order_after(stored, keyed, partition)
        at = edge_timestamp(clock, stored, in_order=in_order, following=following, partition=partition)
        if at is None:
            return 0
        if not following:
            await self.store.set_follow(follower, followee, False, at, source=partition)
            return await self._remove_from(follower, followee, FOLLOW_BAND + at, in_flight=True)
        active_until = last + self._window if last else 0
        await self.store.set_follow(follower, followee, True, at, active_until, source=partition)
        copied = await self._copy_in(follower, followee, FOLLOW_BAND + at)
        return copied if await self._kept(follower, followee, at) else 0

    async def apply_follows(
        self, follower: str, follows: Sequence[tuple[str, int, bool]], partition: int | None = None
    ) -> list[int]:
        """Apply follow events of one follower to distinct followees, each ``(followee, clock,
        keyed)``, records of ``partition``: the state ``apply`` gives for each in turn, in fewer
        round trips; returns each event's entries copied (0 when it lost).

        One event's reads do not depend on another's writes (each reads and writes only its own
        edge; the follower's last activity and the followees' user feeds are written by no follow
        event), so the steps run for all at once: one read of the edges and the last activity, the
        edge writes, the followees' feeds, then the follows' copies (``_copy_writes``: consecutive
        follows' copies in one writer call, up to ``COPY_WRITE_ROWS`` rows), one read of the edges
        again (a follow whose edge was decided anew meanwhile takes its copies back, as in ``apply``).
        """
        followees = [followee for followee, _, _ in follows]
        if len(set(followees)) != len(followees):
            raise ValueError("apply_follows takes one event per followee")
        edges_read, active_read = await asyncio.gather(
            self.store.follow_edges(follower, followees), self.store.last_active(follower), return_exceptions=True
        )
        stored, last = result(edges_read), result(active_read)
        decided = {
            followee: at
            for followee, clock, keyed in follows
            if (at := edge_timestamp(clock, (edge := stored.get(followee)), following=True, partition=partition,
                                     in_order=in_order_after(edge, keyed, partition))) is not None
        }
        await self._set_follows(follower, decided, last + self._window if last else 0, partition)
        newest: dict[str, list[Activity]] = {}
        now: dict[str, Edge] = {}
        if decided:
            feeds = [feed_id(kind, follower) for kind in self.settings.feed_kinds]
            reads = await asyncio.gather(self._newest_of(list(decided)), self._kept_keys(feeds), return_exceptions=True)
            newest, kept = result(reads[0]), result(reads[1])
            for writes in _copy_writes(feeds, newest, decided, _Room(kept, self.settings.max_length)):
                await self.writer.write(writes)
            now = await self.store.follow_edges(follower, list(decided))
        copied, taken_back = [], False
        for followee in followees:
            at, edge = decided.get(followee), now.get(followee)
            if at is not None and (edge is None or edge.decided() != (True, at)):
                await self._remove_from(follower, followee, FOLLOW_BAND + at, in_flight=False)
                taken_back, at = True, None
            elif at is not None and taken_back:  # fitted beside copies taken back: fitted again, as
                await self._copy_in(follower, followee, FOLLOW_BAND + at)  # one by one would
            copied.append(0 if at is None else len(newest[followee]))
        return copied

    async def _set_follows(self, follower: str, decided: dict[str, int], active_until: int, source: int | None) -> None:
        """The follows' edges (``followee: at``), decided by records of ``source``: in one call
        when the store takes runs."""
        if self._runs is not None:
            await self._runs.set_follows(follower, decided, active_until, source=source)
        else:
            await all_settled(self.store.set_follow(follower, f, True, at, active_until, source=source)
                              for f, at in decided.items())

    async def _newest_of(self, followees: list[str]) -> dict[str, list[Activity]]:
        """Each followee's newest ``follow_activity_limit`` activities: in one read when the store
        takes runs."""
        limit = self.settings.follow_activity_limit
        sources = [feed_id(self.settings.user_feed_kind, followee) for followee in followees]
        if self._runs is not None:
            found = await self._runs.read_feeds(sources, limit=limit)
            return {followee: found[source] for followee, source in zip(followees, sources, strict=True)}
        return dict(zip(followees, await all_settled(self._read_all(source, limit) for source in sources), strict=True))

    async def _kept(self, follower: str, followee: str, at: int) -> bool:
        """Whether the follow written at ``at`` still decides its edge; if not, take its copies back."""
        edge = await self.store.follow_edge(follower, followee)
        if edge is not None and edge.decided() == (True, at):
            return True
        await self._remove_from(follower, followee, FOLLOW_BAND + at, in_flight=False)
        return False

    async def _copy_in(self, follower: str, followee: str, write_ts: int) -> int:
        """Copy the followee's newest ``follow_activity_limit`` activities (one read) into the
        follower's feeds (one write: the store batches it)."""
        source = feed_id(self.settings.user_feed_kind, followee)
        feeds = [feed_id(kind, follower) for kind in self.settings.feed_kinds]
        reads = await asyncio.gather(
            self._read_all(source, self.settings.follow_activity_limit), self._kept_keys(feeds), return_exceptions=True
        )
        newest, kept = result(reads[0]), result(reads[1])
        await self.writer.write(list(_fitting(feeds, newest, write_ts, _Room(kept, self.settings.max_length))))
        return len(newest)

    async def _kept_keys(self, feeds: Sequence[str]) -> dict[str, list[Key]]:
        """The keys of each feed's newest ``max_length`` entries, newest first (``_Room``)."""
        limit = self.settings.max_length
        if limit <= 0:
            return {}
        if self._runs is not None:
            found = await self._runs.read_feeds(feeds, limit=limit)
        else:
            found = dict(zip(feeds, await all_settled(self.store.read(f, limit=limit) for f in feeds), strict=True))
        return {feed: [a.key for a in page] for feed, page in found.items()}

    async def _remove_from(self, follower: str, followee: str, write_ts: int, *, in_flight: bool) -> int:
        """Delete the followee's entries from the follower's feeds at ``write_ts``.

        ``in_flight`` (an unfollow): the followee's newest ``UNFOLLOW_IN_FLIGHT`` activities are
        deleted too, found or not: a chunk planned before the unfollow may still be on its way to
        a writer (activities and follows travel on different topics), and its late add must lose.
        """
        feeds = [feed_id(kind, follower) for kind in self.settings.feed_kinds]
        source = feed_id(self.settings.user_feed_kind, followee)
        # the reads at once (the followee's newest, each of the follower's feeds), then one write
        reads = await asyncio.gather(
            self._read_all(source, UNFOLLOW_IN_FLIGHT if in_flight else 0),
            *(self._read_all(feed, None) for feed in feeds),
            return_exceptions=True,
        )
        recent, *found = [result(read) for read in reads]
        removed = 0
        writes: list[TimelineWrite] = []
        for feed, entries in zip(feeds, found, strict=True):
            doomed = {a.id: a for a in entries if a.actor == followee}
            removed += len(doomed)
            doomed.update((a.id, a) for a in recent)
            writes += [TimelineWrite(feed, a, write_ts, remove=True) for a in doomed.values()]
        await self.writer.write(writes)
        return removed

    async def _read_all(self, feed: str, limit: int | None) -> list[Activity]:
        """The feed's newest ``limit`` entries (None: all), newest first."""
        return [a async for page in self._pages(feed, limit) for a in page]

    async def rebuild(self, user: str) -> int:
        """Rebuild ``user``'s timeline feeds from their followees' user feeds; returns the entries.

        The timeline becomes the newest ``max_length`` of the newest ``follow_activity_limit``
        activities of each followee (what re-applying each current follow gives); every other
        entry is deleted row by row (a partition delete would also hide later fanout adds).
        """
        edges = await self.store.follow_edges(user)
        stamps: dict[str, int] = {}  # followee -> the timestamp this rebuild re-applies its follow at
        for followee, edge in sorted(edges.items()):
            if edge.following:
                stamps[followee] = edge.at + 1
                await self.store.set_follow(user, followee, True, stamps[followee], source=edge.source)
        decided = {followee: edge.at for followee, edge in edges.items()} | stamps
        wanted = await self._newest(stamps)
        for kind in self.settings.feed_kinds:
            feed = feed_id(kind, user)
            stale = [a async for page in self._pages(feed, None) for a in page if a.id not in wanted]
            await self.store.apply(
                [TimelineWrite(feed, a, FOLLOW_BAND + decided.get(a.actor, 0), remove=True) for a in stale]
            )
            await self.store.apply([TimelineWrite(feed, a, FOLLOW_BAND + stamps[a.actor]) for a in wanted.values()])
        lost = {followee for followee, at in stamps.items() if not await self._kept(user, followee, at)}
        return sum(a.actor not in lost for a in wanted.values())

    async def _newest(self, followees: dict[str, int]) -> dict[str, Activity]:
        """The newest ``max_length`` of the newest ``follow_activity_limit`` activities of each."""
        keep: list[tuple[Key, Activity]] = []  # a min-heap of the newest max_length entries
        for followee in followees:
            source = feed_id(self.settings.user_feed_kind, followee)
            async for page in self._pages(source, self.settings.follow_activity_limit):
                for activity in page:
                    item = (activity.key, activity)
                    if len(keep) < self.settings.max_length:
                        heapq.heappush(keep, item)
                    elif item[0] > keep[0][0]:
                        heapq.heapreplace(keep, item)
        return {activity.id: activity for _, activity in keep}

    async def _pages(self, feed: str, limit: int | None) -> AsyncIterator[list[Activity]]:
        """The feed newest first, in pages, up to ``limit`` entries (None: all)."""
        before: Key | None = None
        remaining = limit
        while remaining is None or remaining > 0:
            size = _PAGE if remaining is None else remaining  # a bounded read asks for exactly its limit
            page = await self.store.read(feed, limit=size, before=before)
            if not page:
                return
            yield page
            if remaining is not None:
                remaining -= len(page)
            if len(page) < size:
                return
            before = page[-1].key


class _Room:
    """What follows' copies fit into: the keys of each feed's newest ``max_length`` entries, kept up
    to date as copies go in. A copy older than a full feed's oldest kept entry is not among the
    newest ``max_length``, and the writer's next trim would delete it at once, leaving a row
    tombstone (copies are written above the trims' range deletes) that every later trim of the
    feed and every read past its live rows would meet: ~100 follows of 1,000 entries each would
    reach Cassandra's 100,000. So it is not written. A run of follows fits each follow's copies
    after the previous ones', as the follows one by one would."""

    def __init__(self, kept: dict[str, list[Key]], max_length: int) -> None:
        self.kept = kept
        self.max_length = max_length

    def fits(self, feed: str, newest: Sequence[Activity]) -> list[Activity]:
        keys = self.kept.get(feed)
        if keys is None:  # not read (no room to keep): every copy
            return list(newest)
        if len(keys) < self.max_length:
            fitting = list(newest)
        else:
            cutoff = keys[-1]
            fitting = [a for a in newest if a.key >= cutoff]
        if fitting:  # the newest max_length of both, each key once (a copy of an entry the feed holds)
            merged: list[Key] = []
            for key in heapq.merge(keys, sorted((a.key for a in fitting), reverse=True), reverse=True):
                if not merged or merged[-1] != key:
                    merged.append(key)
                    if len(merged) == self.max_length:
                        break
            self.kept[feed] = merged
        return fitting


def _fitting(feeds: Sequence[str], newest: Sequence[Activity], write_ts: int, room: _Room) -> Iterable[TimelineWrite]:
    """The copies of ``newest`` into ``feeds`` at ``write_ts`` that fit (``_Room``)."""
    for feed in feeds:
        yield from (TimelineWrite(feed, a, write_ts) for a in room.fits(feed, newest))


def _copy_writes(
    feeds: Sequence[str], newest: dict[str, list[Activity]], decided: dict[str, int], room: _Room
) -> Iterable[list[TimelineWrite]]:
    """The copies of each decided follow (``followee: at``) into ``feeds``, at ``FOLLOW_BAND + at``
    (``_fitting``), as writer calls: consecutive follows together while they hold at most
    ``COPY_WRITE_ROWS`` rows."""
    call: list[TimelineWrite] = []
    for followee, at in decided.items():
        copies = list(_fitting(feeds, newest[followee], FOLLOW_BAND + at, room))
        if call and len(call) + len(copies) > COPY_WRITE_ROWS:
            yield call
            call = []
        call += copies
    if call:
        yield call
