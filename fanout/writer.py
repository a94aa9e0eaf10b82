"""Applying chunk messages to timelines: the work of the writer agents and of the eager mode.

Trimming keeps a feed near ``max_length`` without a read per insert. An insert of activity A into
feed F triggers a trim of F (``Store.trim``: keep the newest ``max_length``) when

* the hash rule says so: ``crc32(F, A.id) mod trim_every == 0``. It needs no state, so every
  writer process, a restarted one, a retry and a replay all agree; the inserts between two trims
  of a feed are geometric: ``trim_every`` on average, at least ``k * trim_every`` with
  probability ``(1 - 1/trim_every) ** (k * trim_every) <= e^-k``, however many processes write it;
* or this writer's own count of inserts into F since its last trim of F reaches ``trim_every``.
  Counts are kept for the ``tracked_feeds`` feeds written most recently (an LRU: evicting a feed
  drops only its count, the hash rule still holds); a count is lowered only once its trim is
  acknowledged, and a failed trim marks the feed due, so the next insert into it tries again.

A call is applied in rounds so that no round brings a feed more inserts than its count allows: a
feed written by one writer, while tracked, never holds more than ``max_length + trim_every`` rows
(``max_length + trim_every - 1`` once the call returned), whatever one call carries. A store that
knows its feeds' lengths (``FeedColumnStore``: the memory store of the eager mode) needs neither
rule: a chunk's insert that brings a feed to ``max_length + trim_every`` rows trims it, so every
feed keeps that bound. README.md states the bounds; tests/unit/test_trim_trigger.py and
benchmarks/trim_scale.py check them.
"""

from __future__ import annotations

import asyncio
import zlib
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection, Iterator, Sequence
from typing import Final, TypeVar, cast

from .activity import FOLLOW_BAND, REMOVED_WRITE_TS, Activity, now_micros
from .codec import ChunkMessage
from .settling import all_settled
from .store import FeedColumnStore, RegistryEntry, Store, TimelineWrite, class_defines
from .tracing import landings

#: Feeds whose insert counts a writer keeps by default: about 100 MB at ~200 bytes a feed.
DEFAULT_TRACKED_FEEDS: Final = 500_000


def hash_due(feed: str, activity_id: str, trim_every: int) -> bool:
    """The stateless trim trigger: True for about one (feed, activity) pair in ``trim_every``.

    CRC-32 (zlib's, the same in every process and release): a trigger needs agreement and spread,
    not resistance to attack, and it is computed once per row (a tenth of blake2b's cost)."""
    return zlib.crc32(f"{feed}\x1f{activity_id}".encode()) % trim_every == 0


_READS_AT_ONCE = 256  # registry reads awaited together (the store bounds its requests in flight too)
T = TypeVar("T")
_Entries = dict[str, "RegistryEntry | None"]  # activity id -> its registry entry
_EdgesOff = dict[str, dict[str, int]]  # author -> follower -> the timestamp the edge was turned off at


class TimelineWriter:
    """Turns chunks into timeline writes, applies them, and trims the feeds they grow (see above)."""

    def __init__(
        self, store: Store, *, max_length: int, trim_every: int, tracked_feeds: int = DEFAULT_TRACKED_FEEDS,
        follower_kinds: Sequence[str] = (),
    ) -> None:
        self.store = store
        self.follower_kinds = frozenset(follower_kinds)  # the kinds an unfollow takes a followee's entries from
        self.max_length = max_length
        self.trim_every = trim_every
        self.tracked_feeds = max(tracked_feeds, 0)
        self._counts: OrderedDict[str, int] = OrderedDict()  # feed -> inserts not yet covered by a trim
        self.rows_written = 0  # timeline rows the store acknowledged (puts and deletes; trims not counted)
        self.rows_undone = 0  # of those, the deletes ``write_chunks`` wrote after its chunks (removed, unfollowed)
        # in memory: one activity's rows as columns, trims one after another (no I/O to overlap)
        self._columns = cast(FeedColumnStore, store) if class_defines(store, "apply_feeds") else None

    @property
    def tracked(self) -> int:
        """How many feeds' insert counts this writer holds now (at most ``tracked_feeds``)."""
        return len(self._counts)

    async def write_chunks(self, chunks: Sequence[ChunkMessage]) -> int:
        """Apply every feed write of the chunks; return the number of timeline rows written.

        Then, once per activity added, read the registry: an add chunk whose activity was removed
        meanwhile is written again as a remove. After the write, not before: a removal recorded
        while the add was on its way to the store is seen, and one recorded after this read is
        fanned out after this write (it wins) or, for a follower who unfollowed before it was
        planned, met by the unfollow's deletes (the unfollow read the author's feed, which held the
        activity, or this follower's, which held this write). See ``fanout.core``.

        At the same time, once per author of an add, the edges of the followers it reached
        (``follower_kinds``' feeds; none when the audience is not the store's graph): a follower
        whose edge is off now unfollowed the author after the chunk was planned (the planner reads
        the edges that are on), so the rows are deleted at the unfollow's timestamp
        (``FOLLOW_BAND`` + its edge's), as the unfollow's own deletes are. An unfollow deletes
        what the follower's feeds hold and the author's newest activities; an older activity's
        chunk still on its way (posts dated back, behind a backlog) was neither, and would have
        landed after it. The same order argument as the registry's: an unfollow recorded after
        this read scans feeds that hold this write. A later follow's copies are written above the
        delete, so a follow again brings back what it copies. Targets are left (the registry
        names them; without an entry nothing is undone this way).

        Each chunk's landing is recorded for delivery tracing (``fanout.tracing``): at the same
        time as the registry read (one round trip less before a commit; in memory, after the
        removes). A failed trace write is raised only after the removes are written: tracing never
        holds back a remove.
        """
        if len(chunks) == 1 and self._columns is not None:  # the eager mode: one chunk a call
            chunk = chunks[0]
            await self._write_feeds(self._columns, chunk.feeds, chunk.activity, chunk.write_ts, chunk.op == "remove")
            written = len(chunk.feeds)
        else:
            writes = [
                TimelineWrite(feed, chunk.activity, chunk.write_ts, chunk.op == "remove")
                for chunk in chunks
                for feed in chunk.feeds
            ]
            await self.write(writes)
            written = len(writes)
        landed = landings(chunks, now_micros())  # one trace row per chunk
        if self._columns is not None:  # in memory: no I/O to overlap
            undone = self._undo(chunks, await self._registry(chunks), await self._edges_off(chunks))
            await self.write(undone)
            self.rows_undone += len(undone)
            await self.store.record_landed(landed)
            return written + len(undone)
        entries, off, traced = await asyncio.gather(
            self._registry(chunks), self._edges_off(chunks), self.store.record_landed(landed), return_exceptions=True
        )
        for outcome in (entries, off):
            if isinstance(outcome, BaseException):
                raise outcome  # after the other reads and the trace write settled: nothing left running
        undone = self._undo(chunks, cast(_Entries, entries), cast(_EdgesOff, off))
        await self.write(undone)
        self.rows_undone += len(undone)
        if isinstance(traced, BaseException):
            raise traced
        return written + len(undone)

    async def _registry(self, chunks: Sequence[ChunkMessage]) -> _Entries:
        """The registry's entry of each activity the chunks add."""
        added = list(dict.fromkeys(chunk.activity.id for chunk in chunks if chunk.op == "add"))
        return dict(zip(added, await self._at_once(self.store.get_activity, added), strict=True))

    async def _edges_off(self, chunks: Sequence[ChunkMessage]) -> _EdgesOff:
        """Of each author of an add, the followers whose follower feeds the chunks write and whose
        edge to the author is off now (``Store.unfollowed``)."""
        if not self.follower_kinds:
            return {}
        by_author: dict[str, list[ChunkMessage]] = {}
        for chunk in chunks:
            if chunk.op == "add":
                by_author.setdefault(chunk.activity.actor, []).append(chunk)
        authors = list(by_author)
        kinds = sorted(self.follower_kinds)
        found = await self._at_once(
            lambda author: self.store.unfollowed(author, ChunkFollowers(by_author[author], kinds)), authors
        )
        return {author: off for author, off in zip(authors, found, strict=True) if off}

    @staticmethod
    async def _at_once(read: Callable[[str], Awaitable[T]], keys: Sequence[str]) -> list[T]:
        """``read`` of each key, ``_READS_AT_ONCE`` at a time (one alone without a task: the eager mode)."""
        if len(keys) == 1:
            return [await read(keys[0])]
        found: list[T] = []
        for start in range(0, len(keys), _READS_AT_ONCE):
            found += await all_settled(read(key) for key in keys[start : start + _READS_AT_ONCE])
        return found

    def _undo(self, chunks: Sequence[ChunkMessage], entries: _Entries, off: _EdgesOff) -> list[TimelineWrite]:
        """The deletes ``write_chunks`` writes after the chunks: every feed of an add whose activity
        the registry says is removed (at ``REMOVED_WRITE_TS``); else each follower feed whose
        follower's edge to the author is off now, at ``FOLLOW_BAND`` + the edge's timestamp (not a
        target's: the registry names them, and a target is written whoever follows whom)."""
        undone: list[TimelineWrite] = []
        for chunk in chunks:
            if chunk.op != "add":
                continue
            activity = chunk.activity
            entry = entries.get(activity.id)
            if entry is not None and entry.removed:
                undone += [TimelineWrite(feed, activity, REMOVED_WRITE_TS, remove=True) for feed in chunk.feeds]
                continue
            edges = off.get(activity.actor)
            if not edges or entry is None or entry.activity is None:
                continue  # no registry entry (expired, or an earlier build's): its targets unknown, nothing undone
            targets = set(entry.activity.to or ())
            for feed in chunk.feeds:
                user = self._follower(feed)
                at = None if user is None or feed in targets else edges.get(user)
                if at is not None:
                    undone.append(TimelineWrite(feed, activity, FOLLOW_BAND + at, remove=True))
        return undone

    def _follower(self, feed: str) -> str | None:
        """The user of a feed of a follower kind (None for another kind's: a target's, an author's own)."""
        kind, _, user = feed.partition(":")
        return user if kind in self.follower_kinds else None

    async def write(self, writes: Sequence[TimelineWrite]) -> None:
        """Apply the writes, trimming every feed whose trim falls due; raises the first failure
        (after the other trims of its round settled)."""
        pending = list(writes)
        while pending:
            now, pending, due = self._round(pending)
            await self.store.apply(now)
            self.rows_written += len(now)
            if due:
                await self._trim(due)

    async def _write_feeds(
        self, store: FeedColumnStore, feeds: Sequence[str], activity: Activity, write_ts: int, remove: bool
    ) -> None:
        """``write`` of one activity's writes to ``feeds``, as columns. Such a store knows each
        feed's length, so no insert is counted or hashed: a feed holding ``max_length +
        trim_every`` entries after the write is trimmed at once, a trim per ``trim_every`` inserts
        as the count gives, and the bound of a tracked feed holds for every feed."""
        over = None if remove else self.max_length + self.trim_every - 1
        full = await store.apply_feeds(feeds, activity, write_ts, remove, over=over)
        self.rows_written += len(feeds)
        for feed in full:
            await self.store.trim(feed, self.max_length)

    def _round(self, writes: list[TimelineWrite]) -> tuple[list[TimelineWrite], list[TimelineWrite], dict[str, int]]:
        """The writes to apply now, those that wait for the next round (inserts into a feed after
        the one that made it due), and the due feeds with their counts."""
        now: list[TimelineWrite] = []
        later: list[TimelineWrite] = []
        due: dict[str, int] = {}
        every = self.trim_every
        for write in writes:
            feed = write.feed
            if write.remove:  # a delete never grows a feed
                now.append(write)
            elif feed in due:
                later.append(write)
            else:
                now.append(write)
                count = self._count(feed, 1)
                if count >= every or hash_due(feed, write.activity.id, every):
                    due[feed] = count
        return now, later, due

    def _count(self, feed: str, inserts: int) -> int:
        counts = self._counts
        count = counts.pop(feed, 0) + inserts
        if self.tracked_feeds:
            counts[feed] = count
            if len(counts) > self.tracked_feeds:
                counts.popitem(last=False)  # the least recently written feed
        return count

    async def _trim(self, due: dict[str, int]) -> None:
        feeds = list(due)
        trims = [self.store.trim(feed, self.max_length) for feed in feeds]
        if len(trims) == 1 or self._columns is not None:  # no tasks for one trim, nor in memory (no I/O)
            results: list[int | BaseException] = [await _settle(trim) for trim in trims]
        else:
            results = await asyncio.gather(*trims, return_exceptions=True)
        failure: BaseException | None = None
        for feed, result in zip(feeds, results, strict=True):
            if isinstance(result, BaseException):
                failure = failure or result
                left = self._counts.get(feed, 0)
                if left < self.trim_every:
                    self._count(feed, self.trim_every - left)  # due again at its next insert
            elif feed in self._counts:
                self._counts[feed] = max(0, self._counts[feed] - due[feed])  # inserts since stay counted
        if failure is not None:
            raise failure


async def _settle(trim: Awaitable[int]) -> int | BaseException:
    """What ``asyncio.gather(..., return_exceptions=True)`` gives for one awaitable, without a task."""
    try:
        return await trim
    except Exception as exc:
        return exc


class ChunkFollowers(Collection[str]):
    """The users whose feeds of ``kinds`` the chunks write, for ``Store.unfollowed``: membership
    is a lookup of the users' feed ids in a set of the chunks' feeds (built once, at C speed: the
    memory store looks up its few edges off); the users themselves are parsed from the feed ids
    only when iterated (the Cassandra store names them in its queries)."""

    def __init__(self, chunks: Sequence[ChunkMessage], kinds: Sequence[str]) -> None:
        self._chunks = chunks
        self._prefixes = [f"{kind}:" for kind in kinds]
        self._feeds: set[str] | None = None
        self._users: list[str] | None = None

    def __contains__(self, user: object) -> bool:
        if self._feeds is None:
            self._feeds = set().union(*(chunk.feeds for chunk in self._chunks))
        return isinstance(user, str) and any(prefix + user in self._feeds for prefix in self._prefixes)

    def __iter__(self) -> Iterator[str]:
        return iter(self._parsed())

    def __len__(self) -> int:
        return len(self._parsed())

    def _parsed(self) -> list[str]:
        if self._users is None:
            prefixes = tuple(self._prefixes)
            feeds = (feed for chunk in self._chunks for feed in chunk.feeds if feed.startswith(prefixes))
            self._users = list(dict.fromkeys(feed.partition(":")[2] for feed in feeds))
        return self._users
