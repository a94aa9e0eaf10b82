"""Replaying ``activities`` and ``follows`` to rebuild feeds: ``fanout replay`` and ``fanout rebuild``.

``replay(settings, ...)`` re-reads both topics - from the beginning, from a time (``since``) or
between offsets - and runs every event through the same code as the live pipeline:
``Fanout.handle_activity`` (the planner) with chunks applied in-process by ``Fanout.writer``
(the ``TimelineWriter`` the writer agents use), and ``Fanout.handle_follow`` (the follows agent),
on the Cassandra store. ``via_kafka=True`` publishes the chunks to the ``high``/``low`` topics
instead, for the writer agents to apply. Uses: after a bug, a schema or trimming change, a lost
table (``drop_timelines=True`` truncates the timeline table first) or a new feed kind (``kind=``).

Consumer group and resuming
    The replay reads with its own consumer group (``<prefix>replay``, or ``group=``), by manual
    assignment of every partition of both topics, so the live workers keep running and are never
    rebalanced. After each batch's writes are acknowledged it commits, per partition, the offset
    after the last record it processed; the commit metadata names the replay (a fingerprint of
    what it writes: ``users``, ``kind``, ``end_offsets``) and whether it is running or done.
    Interrupted (Ctrl+C, ``stop``, a crash), the same replay run again resumes from those offsets
    (``since``/``start_offsets`` only place a fresh replay); a different replay refuses to start
    over an unfinished one (``ReplayConflict``) unless ``reset``. A finished replay run again
    starts over. Without explicit ``end_offsets`` a replay runs to the log end it
    saw at the start and then catches up (up to ``_CATCH_UP_ROUNDS`` times) with the records
    appended meanwhile, so a follow that arrived during the replay is applied after the activities
    it copies were rewritten.

Order: both topics merged by record timestamp
    The replay buffers records of every partition and always processes the one with the smallest
    (timestamp, topic, partition, offset) among the partition heads: both topics are merged into
    one history in timestamp order, and the records of one partition stay in offset order (one
    actor's activities, one follower's follows and unfollows, as produced). A replay into a store
    without a follow graph therefore re-creates the graph as it stood when each activity was
    planned, and ``since``/offsets read as "the history from then on".

Why the end state does not depend on that order anyway
    Every timeline write carries a write timestamp fixed by the event, not by when it is applied
    (``fanout.activity``): a fanout add is written at the activity time; a follow copy and an
    unfollow's deletes at ``FOLLOW_BAND`` + the follow/unfollow time (above every add); a remove at
    ``REMOVED_WRITE_TS`` and a trim at ``TRIMMED_WRITE_TS`` (above everything else). Follow edges
    are written at the event time too. The store keeps the newest write of every cell (a delete
    wins a tie), so the same set of writes gives the same timelines in any order, and applying it
    again changes nothing: replays are idempotent, also while live traffic flows. The reads that
    drive writes complement each other: an activity planned before a follow that postdates it is
    brought in by the follow's copy (the author's own feed is written before the fanout), one
    planned after it by the fanout; an unfollow's deletes outrank every add, so a fanout write
    arriving after it cannot bring the entry back; a removed activity is never re-added (the
    registry remembers the removal). The read-then-write steps of one follower (a follow copies
    the followee's user feed, an unfollow deletes what it finds plus the followee's newest
    activities) need that follower's events in produce order, which the partition order keeps.
    Limits: amortised trimming (a feed holds up to ``max_length + trim_every - 1`` entries; which
    ones past ``max_length`` depends on when trims ran, and trimmed entries stay off until the
    timelines are dropped), and ``follow_activity_limit`` (a follow copies only the followee's
    newest N activities, a replay onto the final graph fans all of them).

Concurrency (same results, faster)
    Within a batch the merged records are cut into runs of consecutive records of one topic. In a
    run of activities, different actors are planned concurrently (one actor's in order) and their
    chunks are buffered and written in bulk; before a run of follows every buffered chunk is
    written (an unfollow reads the follower's timeline), and in a run of follows different
    followers are handled concurrently. No activity runs while a follow runs. So every read sees
    what it would see in the sequential order, except for priorities (HIGH/LOW) which only route
    chunks. Activities with producer-chosen ids that two actors claim start a new run.

``users=`` rebuilds only those users' timelines: a ``UserFilterSink`` drops every other feed
from the chunks, and only their follow events are applied (the follow graph of everyone else is
read from the store as it is). The authors' own user feeds are rewritten too (idempotently): they
are the source of follow copies. ``kind=`` fans into that feed kind only
(``settings.feed_kinds = (kind,)``), e.g. to build a new kind from history.

Records that break the wire contract are counted (by reason) and skipped; the live workers
dead-lettered them when they first saw them, so the replay does not send them again.

``rebuild_users(settings, users)`` (``fanout rebuild USER``) rebuilds single timelines from the
followees' user feeds (``Fanout.rebuild``), without reading Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Final, NamedTuple

import msgspec
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from fanout.activity import Activity
from fanout.codec import ActivityEvent, ChunkMessage, FollowEvent, decode_activity_event, decode_follow_event
from fanout.core import ChunkSink, Fanout
from fanout.errors import ConfigError, InvalidEvent
from fanout.feeds import feed_id
from fanout.kafka import KafkaClients
from fanout.settings import Settings
from fanout.store import FollowerRow, Key, RegistryEntry, Store, TimelineWrite
from fanout.writer import TimelineWriter

from . import group_id
from .base import make_producer, retry_store
from .topics import check_topics, committed_offsets, describe_topics

__all__ = [
    "SOURCES",
    "Offsets",
    "ReplayConflict",
    "ReplaySummary",
    "UserFilterSink",
    "rebuild_users",
    "replay",
]

log = logging.getLogger("fanout.replay")

#: ``{"activities": 120}`` (every partition) or ``{"follows": {0: 10, 2: 40}}`` (per partition).
Offsets = Mapping[str, int | Mapping[int, int]]

SOURCES: Final = ("follows", "activities")  # merge tie-break on equal timestamps: follows first
ROLE: Final = "replay"
_CATCH_UP_ROUNDS: Final = 5
_BUFFER_PER_PARTITION: Final = 2_000  # records buffered per partition before it is paused
_FLUSH_FEEDS: Final = 200_000  # buffered chunk feeds written at once
_CONCURRENCY: Final = 32  # actors (or followers) handled at once within a run
_METADATA_PREFIX: Final = "fanout-replay/1 "


class ReplayConflict(ConfigError):
    """The replay group holds the progress of a replay with other options."""


# summary -----------------------------------------------------------------------------------
@dataclass(slots=True)
class ReplaySummary:
    """What a replay did. ``rows`` counts timeline rows written (and acknowledged) by this process:
    fanout chunks, authors' own feeds, follow copies and unfollow deletes."""

    group: str
    total: int = 0  # records in the offset ranges replayed (grows when it catches up)
    events: int = 0  # records processed, whatever the outcome
    activities: int = 0
    follows: int = 0
    skipped: int = 0  # follow events of users outside ``users``
    invalid: int = 0
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    chunks_high: int = 0
    chunks_low: int = 0
    published_rows: int = 0  # via_kafka: feeds in the chunks published for the writer agents
    batches: int = 0
    resumed: bool = False
    interrupted: bool = False
    elapsed: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    def table(self) -> Table:
        table = Table(title="replay " + ("interrupted" if self.interrupted else "done"), show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.invalid_reasons.items()))
        for name, value in (
            ("group", self.group + (" (resumed)" if self.resumed else "")),
            ("events", f"{self.events:,} of {self.total:,}"),
            ("  activities", f"{self.activities:,}"),
            ("  follows", f"{self.follows:,}"),
            ("  skipped (other users)", f"{self.skipped:,}"),
            ("  dead/invalid", f"{self.invalid:,}" + (f" ({reasons})" if reasons else "")),
            ("timeline rows written", f"{self.rows:,}"),
            ("chunks high / low", f"{self.chunks_high:,} / {self.chunks_low:,}"),
            ("rows published (via kafka)", f"{self.published_rows:,}"),
            ("elapsed", f"{self.elapsed:.1f} s"),
            ("events/s", f"{self.events_per_s:,.0f}"),
            ("rows/s", f"{self.rows_per_s:,.0f}"),
        ):
            table.add_row(name, value)
        return table


# sinks and the counting store -----------------------------------------------------------
class UserFilterSink:
    """A ``ChunkSink`` that keeps only the feeds of ``users`` (of the fanned kinds)."""

    def __init__(self, inner: ChunkSink, users: Iterable[str], kinds: Sequence[str]) -> None:
        self.inner = inner
        self.feeds = frozenset(feed_id(kind, user) for user in users for kind in kinds)

    async def send(self, chunk: ChunkMessage) -> None:
        feeds = [f for f in chunk.feeds if f in self.feeds]
        if feeds:
            await self.inner.send(msgspec.structs.replace(chunk, feeds=feeds))


class _BufferedWriterSink:
    """Buffers chunks and writes them with ``TimelineWriter.write_chunks`` (the writer agents'
    code) in bulk: on ``flush`` and whenever ``_FLUSH_FEEDS`` feeds are waiting."""

    def __init__(self, writer: TimelineWriter, summary: ReplaySummary) -> None:
        self.writer = writer
        self.summary = summary
        self._chunks: list[ChunkMessage] = []
        self._feeds = 0

    async def send(self, chunk: ChunkMessage) -> None:
        self._count(chunk)
        self._chunks.append(chunk)
        self._feeds += len(chunk.feeds)
        if self._feeds >= _FLUSH_FEEDS:
            await self.flush()

    def _count(self, chunk: ChunkMessage) -> None:
        if chunk.priority == "high":
            self.summary.chunks_high += 1
        else:
            self.summary.chunks_low += 1

    async def flush(self) -> None:
        chunks, self._chunks, self._feeds = self._chunks, [], 0
        if chunks:
            await retry_store(ROLE, partial(self.writer.write_chunks, chunks))


class _PublishingSink(_BufferedWriterSink):
    """``via_kafka``: chunks go to the ``high``/``low`` topics (``KafkaChunkSink``)."""

    def __init__(self, inner: Any, writer: TimelineWriter, summary: ReplaySummary) -> None:
        super().__init__(writer, summary)
        self.inner = inner

    async def send(self, chunk: ChunkMessage) -> None:
        self._count(chunk)
        self.summary.published_rows += len(chunk.feeds)
        await self.inner.send(chunk)

    async def flush(self) -> None:
        await self.inner.flush()


class _CountingStore:
    """Delegates to a store and counts the timeline rows it applied."""

    def __init__(self, inner: Store, summary: ReplaySummary) -> None:
        self.inner = inner
        self.summary = summary

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        await self.inner.apply(writes)
        self.summary.rows += len(writes)

    async def read(
        self, feed: str, *, limit: int, before: Key | None = None, after: Key | None = None
    ) -> list[Activity]:
        return await self.inner.read(feed, limit=limit, before=before, after=after)

    async def trim(self, feed: str, max_length: int) -> int:
        return await self.inner.trim(feed, max_length)

    async def drop_timelines(self) -> None:
        await self.inner.drop_timelines()

    async def feed_ids(self) -> list[str]:
        return await self.inner.feed_ids()

    async def clear_feed(self, feed: str, write_ts: int) -> None:
        await self.inner.clear_feed(feed, write_ts)

    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        return await self.inner.get_activity(activity_id)

    async def put_activity(self, activity: Activity) -> None:
        await self.inner.put_activity(activity)

    async def mark_removed(self, activity_id: str) -> None:
        await self.inner.mark_removed(activity_id)

    async def set_follow(
        self, follower: str, followee: str, following: bool, at: int, active_until: int = 0
    ) -> None:
        await self.inner.set_follow(follower, followee, following, at, active_until)

    async def following(self, user: str) -> list[str]:
        return await self.inner.following(user)

    def followers(self, followee: str, *, page_size: int) -> AsyncIterator[list[FollowerRow]]:
        return self.inner.followers(followee, page_size=page_size)

    async def last_active(self, user: str) -> int:
        return await self.inner.last_active(user)

    async def set_active(self, user: str, active_until: int, at: int) -> None:
        await self.inner.set_active(user, active_until, at)

    async def close(self) -> None:
        """The replay does not own the store it was given: closing is the caller's."""


# the timestamp merge ---------------------------------------------------------------------
class _Merger:
    """Reads assigned partitions in ``[start, end)`` and yields records in timestamp order.

    A record is released only when every unfinished partition has a buffered head, so the
    smallest head really is the smallest next record. Partitions that reached their end, or
    buffered ``_BUFFER_PER_PARTITION`` records, are paused.
    """

    def __init__(self, consumer: Any, ranks: Mapping[str, int], fetch_ms: int) -> None:
        self.consumer = consumer
        self.ranks = ranks
        self.fetch_ms = fetch_ms
        self.end: dict[TopicPartition, int] = {}
        self.buffers: dict[TopicPartition, deque[Any]] = {}
        self.fetched_all: dict[TopicPartition, bool] = {}
        self.paused: set[TopicPartition] = set()

    def add(self, tp: TopicPartition, start: int, end: int) -> None:
        self.end[tp] = end
        self.buffers[tp] = deque()
        self.fetched_all[tp] = start >= end
        self.consumer.seek(tp, start)
        self._set_paused(tp, self.fetched_all[tp])

    def extend(self, tp: TopicPartition, end: int) -> None:
        """Move the end of a partition (catching up); records past the old end are re-fetched."""
        old = self.end[tp]
        if end <= old:
            return
        self.end[tp] = end
        if self.fetched_all[tp]:
            self.fetched_all[tp] = False
            self.consumer.seek(tp, old)
        self._set_paused(tp, False)

    def _set_paused(self, tp: TopicPartition, paused: bool) -> None:
        if paused and tp not in self.paused:
            self.consumer.pause(tp)
            self.paused.add(tp)
        elif not paused and tp in self.paused:
            self.consumer.resume(tp)
            self.paused.discard(tp)

    def _key(self, record: Any) -> tuple[int, int, int, int]:
        return (record.timestamp, self.ranks[record.topic], record.partition, record.offset)

    async def next_batch(self, max_records: int) -> list[Any]:
        """Up to ``max_records`` records in merged order; ``[]`` once every partition is done."""
        out: list[Any] = []
        while len(out) < max_records:
            blocked: list[TopicPartition] = []
            while len(out) < max_records:
                best: TopicPartition | None = None
                best_key: tuple[int, int, int, int] | None = None
                blocked = []
                for tp, buffer in self.buffers.items():
                    if buffer:
                        key = self._key(buffer[0])
                        if best_key is None or key < best_key:
                            best, best_key = tp, key
                    elif not self.fetched_all[tp]:
                        blocked.append(tp)
                if blocked or best is None:
                    break
                buffer = self.buffers[best]
                out.append(buffer.popleft())
                if len(buffer) < _BUFFER_PER_PARTITION // 2 and not self.fetched_all[best]:
                    self._set_paused(best, False)
            if not blocked:
                return out  # full, or every partition done
            if out and len(out) >= max_records // 4:
                return out  # enough to work on; fetch the rest with the next batch
            await self._fetch(blocked)
        return out

    async def _fetch(self, blocked: list[TopicPartition]) -> None:
        fetched = await self.consumer.getmany(timeout_ms=self.fetch_ms)
        for tp, records in fetched.items():
            if tp not in self.buffers or self.fetched_all[tp]:
                continue
            end = self.end[tp]
            buffer = self.buffers[tp]
            for record in records:
                if record.offset >= end:
                    self.fetched_all[tp] = True
                    break
                buffer.append(record)
            if records and records[-1].offset + 1 >= end:
                self.fetched_all[tp] = True
            if self.fetched_all[tp] or len(buffer) >= _BUFFER_PER_PARTITION:
                self._set_paused(tp, True)
        for tp in blocked:
            if not self.buffers[tp] and not self.fetched_all[tp] and await self.consumer.position(tp) >= self.end[tp]:
                self.fetched_all[tp] = True  # gaps at the end (control records, compaction)
                self._set_paused(tp, True)


# the replay --------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Item:
    record: Any
    event: ActivityEvent | FollowEvent


class _Replayer:
    def __init__(
        self,
        settings: Settings,
        fanout: Fanout,
        sink: _BufferedWriterSink,
        summary: ReplaySummary,
        users: frozenset[str] | None,
    ) -> None:
        self.settings = settings
        self.fanout = fanout
        self.sink = sink
        self.summary = summary
        self.users = users
        self.activities_topic = settings.topic("activities")
        self._logged_invalid = 0

    async def process(self, records: list[Any]) -> None:
        """Apply a batch of merged records; return once every write is acknowledged."""
        run: list[_Item] = []
        run_is_follows = False
        claimed: dict[str, str] = {}  # producer-chosen activity id -> actor, within the run
        for record in records:
            is_follow = record.topic != self.activities_topic
            item = self._decode(record, is_follow)
            if item is None:
                continue
            event = item.event
            conflict = False
            if isinstance(event, ActivityEvent) and event.id is not None:
                conflict = claimed.get(event.id, event.actor) != event.actor
            if run and (is_follow != run_is_follows or conflict):
                await self._run(run, run_is_follows)
                run, claimed = [], {}
            run_is_follows = is_follow
            run.append(item)
            if isinstance(event, ActivityEvent) and event.id is not None:
                claimed.setdefault(event.id, event.actor)
        if run:
            await self._run(run, run_is_follows)
        await self.sink.flush()

    def _decode(self, record: Any, is_follow: bool) -> _Item | None:
        self.summary.events += 1
        try:
            if record.value is None:
                raise InvalidEvent("the record has no value", reason="json")
            limit = self.settings.max_event_bytes
            if is_follow:
                follow = decode_follow_event(record.value, max_bytes=limit)
                if self.users is not None and follow.follower not in self.users:
                    self.summary.skipped += 1
                    return None
                return _Item(record, follow)
            return _Item(record, decode_activity_event(record.value, max_bytes=limit))
        except InvalidEvent as exc:
            self._invalid(record, exc)
            return None

    def _invalid(self, record: Any, exc: InvalidEvent) -> None:
        self.summary.invalid += 1
        reasons = self.summary.invalid_reasons
        reasons[exc.reason] = reasons.get(exc.reason, 0) + 1
        if self._logged_invalid < 10:
            self._logged_invalid += 1
            log.warning("replay: skipped %s[%d]@%d (%s): %s", record.topic, record.partition, record.offset,
                        exc.reason, exc)

    async def _run(self, run: list[_Item], follows: bool) -> None:
        if follows:
            await self.sink.flush()  # an unfollow reads the follower's timeline
        lanes: dict[str, list[_Item]] = {}
        for item in run:
            event = item.event
            key = event.follower if isinstance(event, FollowEvent) else event.actor
            lanes.setdefault(key, []).append(item)
        if len(lanes) == 1:
            await self._lane(run, None)
            return
        gate = asyncio.Semaphore(_CONCURRENCY)
        async with asyncio.TaskGroup() as group:
            for items in lanes.values():
                group.create_task(self._lane(items, gate))

    async def _lane(self, items: list[_Item], gate: asyncio.Semaphore | None) -> None:
        async with gate if gate is not None else contextlib.nullcontext():
            for item in items:
                await self._apply(item)

    async def _apply(self, item: _Item) -> None:
        record, event = item.record, item.event
        accepted = record.timestamp * 1000  # ms -> us, exactly as the planner and follows agents
        try:
            if isinstance(event, FollowEvent):
                await retry_store(ROLE, partial(self.fanout.handle_follow, event, accepted_ts=accepted))
                self.summary.follows += 1
            else:
                await retry_store(ROLE, partial(self.fanout.handle_activity, event, accepted_ts=accepted))
                self.summary.activities += 1
        except InvalidEvent as exc:  # e.g. an activity id claimed by another actor
            self._invalid(record, exc)


def _fingerprint(spec: Mapping[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


class _Progress(NamedTuple):
    """The commit metadata of the replay group: which replay, running or done."""

    target: str
    state: str  # "running" | "done"
    description: str

    def encode(self) -> str:
        return f"{_METADATA_PREFIX}{self.target} {self.state} {self.description}"

    @classmethod
    def decode(cls, metadata: str | None) -> _Progress | None:
        if not metadata or not metadata.startswith(_METADATA_PREFIX):
            return None
        target, _, rest = metadata[len(_METADATA_PREFIX) :].partition(" ")
        state, _, description = rest.partition(" ")
        return cls(target, state, description)


def _describe(spec: Mapping[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(spec.items()) if v not in (None, {}, [])]
    return ", ".join(parts) or "full replay"


def _offsets_for(spec: Offsets | None, short: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    if not spec:
        return {}
    unknown = set(spec) - set(SOURCES)
    if unknown:
        raise ConfigError(f"offsets name unknown topic(s) {sorted(unknown)}: use 'activities' or 'follows'")
    value = spec.get(short)
    if value is None:
        return {}
    if isinstance(value, int):
        return dict.fromkeys(partitions, value)
    valid = set(partitions)
    bad = sorted(p for p in value if p not in valid)
    if bad:
        raise ConfigError(f"topic {topic} has no partition(s) {bad}")
    return dict(value)


def _since_ms(since: datetime | int | None) -> int | None:
    if since is None or isinstance(since, int):
        return since
    if since.tzinfo is None:
        raise ConfigError("since: give a timezone-aware datetime")
    return int(since.timestamp() * 1000)


async def _committed(settings: Settings, group: str, tps: list[TopicPartition]) -> dict[TopicPartition, Any]:
    async with KafkaClients(settings).admin() as admin:
        offsets = await committed_offsets(admin, group, tps)
    return {tp: meta for tp, meta in offsets.items() if meta.offset >= 0}


async def replay(
    settings: Settings,
    *,
    since: datetime | int | None = None,
    start_offsets: Offsets | None = None,
    end_offsets: Offsets | None = None,
    users: Iterable[str] | None = None,
    kind: str | None = None,
    reset: bool = False,
    progress: bool = True,
    store: Store | None = None,
    via_kafka: bool = False,
    drop_timelines: bool = False,
    group: str | None = None,
    catch_up: bool = True,
    stop: asyncio.Event | None = None,
    console: Console | None = None,
) -> ReplaySummary:
    """Replay ``activities`` and ``follows`` into the timelines; see the module docstring.

    ``since``: a timezone-aware datetime or epoch milliseconds (per partition, from the first
    record at or after it). ``start_offsets``/``end_offsets``: ``{"activities": 120}`` or
    ``{"follows": {0: 10}}``; the end is exclusive and turns catching up off. ``reset``: ignore
    (and overwrite) the group's progress. ``store``: default ``CassandraStore.connect(settings)``
    (migrated; closed at the end; a given store is not closed). ``stop``: set it to stop after
    the batch in progress (committed); cancelling abandons the batch (re-done on resume).
    """
    user_set = frozenset(u for u in users if u) if users is not None else None
    if user_set is not None and not user_set:
        raise ConfigError("users: give at least one user")
    if kind is not None:
        if not kind or ":" in kind:
            raise ConfigError(f"kind {kind!r} is not a feed kind")
        if kind == settings.user_feed_kind:
            raise ConfigError(f"kind {kind!r}: user feeds are always rewritten (they are the source)")
        settings = settings.replace(feed_kinds=(kind,))
    if drop_timelines and (user_set is not None or since is not None or start_offsets):
        raise ConfigError("drop_timelines needs a full replay (no users, since or start offsets)")
    since_ms = _since_ms(since)
    group = group or group_id(settings.topic_prefix, ROLE)
    spec = {
        "since": since_ms,
        "start": {k: v if isinstance(v, int) else dict(v) for k, v in (start_offsets or {}).items()},
        "end": {k: v if isinstance(v, int) else dict(v) for k, v in (end_offsets or {}).items()},
        "users": _fingerprint({"u": sorted(user_set)}) if user_set is not None else None,
        "kind": kind,
    }
    # What the replay writes (not where it starts: a resumed replay starts at its commits).
    target = _fingerprint({k: spec[k] for k in ("end", "users", "kind")})
    description = _describe(spec)[:300]
    running = _Progress(target, "running", description).encode()
    summary = ReplaySummary(group=group)
    stop = stop or asyncio.Event()
    topics = {short: settings.topic(short) for short in SOURCES}
    await check_topics(settings, SOURCES + (("high", "low") if via_kafka else ()))

    own_store = store is None
    if store is None:
        from fanout.cassandra import CassandraStore

        cassandra = await CassandraStore.connect(settings, write_mode="partition_batch")
        try:
            await cassandra.migrate()
        except BaseException:
            await cassandra.close()
            raise
        store = cassandra
    consumer = KafkaClients(settings).consumer(
        "fanout-replay",
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )
    producer: Any = None
    started = time.monotonic()
    bar: Progress | None = None
    try:
        await consumer.start()
        partitions = await describe_topics(settings)
        tps = [
            TopicPartition(topics[short], p) for short in SOURCES for p in range(partitions[topics[short]])
        ]
        consumer.assign(tps)
        begin = await consumer.beginning_offsets(tps)
        high_water = await consumer.end_offsets(tps)
        start = dict(begin)
        if since_ms is not None:
            found = await consumer.offsets_for_times(dict.fromkeys(tps, since_ms))
            for tp in tps:
                hit = found.get(tp)
                start[tp] = high_water[tp] if hit is None else max(begin[tp], hit.offset)
        end = dict(high_water)
        for short in SOURCES:
            mine = [tp for tp in tps if tp.topic == topics[short]]
            parts = [tp.partition for tp in mine]
            for p, off in _offsets_for(start_offsets, short, topics[short], parts).items():
                tp = TopicPartition(topics[short], p)
                start[tp] = min(max(off, begin[tp]), high_water[tp])
            for p, off in _offsets_for(end_offsets, short, topics[short], parts).items():
                tp = TopicPartition(topics[short], p)
                end[tp] = min(max(off, begin[tp]), high_water[tp])
        catch_up = catch_up and not end_offsets

        committed = {} if reset else await _committed(settings, group, tps)
        progress_of = [_Progress.decode(m.metadata) for m in committed.values()]
        unfinished = [p for p in progress_of if p is None or p.state != "done"]
        if unfinished:
            other = next((p for p in unfinished if p is None or p.target != target), None)
            if other is not None or unfinished[0] is None:
                was = other.description if other is not None else "not a fanout replay"
                raise ReplayConflict(
                    f"consumer group {group!r} holds an unfinished replay ({was}) that differs from this "
                    f"one ({description}); pass --reset (reset=True) to abandon it and start this one, "
                    "--group for a separate one, or run the unfinished one again to finish it"
                )
            summary.resumed = True
            for tp, meta in committed.items():
                start[tp] = max(begin[tp], min(meta.offset, high_water[tp]))
            was = unfinished[0].description if unfinished[0] is not None else description
            log.info("replay: resuming the unfinished replay of group %s (%s) from its commits", group, was)
        else:
            if drop_timelines:
                log.warning("replay: dropping every timeline before a full replay")
                await store.drop_timelines()
            await consumer.commit({tp: (start[tp], running) for tp in tps})

        counted: Store = _CountingStore(store, summary)
        fanout = Fanout(counted, settings)
        sink: _BufferedWriterSink
        if via_kafka:
            from .planner import KafkaChunkSink

            producer = make_producer(settings, "fanout-replay")
            await producer.start()
            sink = _PublishingSink(KafkaChunkSink(producer, settings), fanout.writer, summary)
        else:
            sink = _BufferedWriterSink(fanout.writer, summary)
        fanout.sink = sink if user_set is None else UserFilterSink(sink, user_set, settings.feed_kinds)
        replayer = _Replayer(settings, fanout, sink, summary, user_set)

        ranks = {topics[short]: rank for rank, short in enumerate(SOURCES)}
        merger = _Merger(consumer, ranks, fetch_ms=max(settings.batch_max_wait_ms, 100))
        for tp in tps:
            if start[tp] > end[tp]:
                start[tp] = end[tp]
            merger.add(tp, start[tp], end[tp])
        summary.total = sum(end[tp] - start[tp] for tp in tps)
        log.info("replay: group %s, %s, %d records%s", group, _describe(spec), summary.total,
                 " (resumed)" if summary.resumed else "")

        if progress:
            bar = _progress_bar(console)
            bar.start()
        task = bar.add_task("replay", total=summary.total, rows=0) if bar is not None else None
        rounds = 0
        while not stop.is_set():
            batch = await merger.next_batch(settings.batch_max_records)
            if not batch:
                if not catch_up or rounds >= _CATCH_UP_ROUNDS:
                    break
                rounds += 1
                latest = await consumer.end_offsets(tps)
                grown = {tp: latest[tp] for tp in tps if latest[tp] > merger.end[tp]}
                if not grown:
                    break
                for tp, new_end in grown.items():
                    summary.total += new_end - merger.end[tp]
                    merger.extend(tp, new_end)
                if bar is not None and task is not None:
                    bar.update(task, total=summary.total)
                continue
            await replayer.process(batch)
            last: dict[TopicPartition, int] = {}
            for record in batch:
                last[TopicPartition(record.topic, record.partition)] = record.offset
            await consumer.commit({tp: (offset + 1, running) for tp, offset in last.items()})
            summary.batches += 1
            if bar is not None and task is not None:
                bar.update(task, completed=summary.events, rows=summary.rows)
        summary.interrupted = stop.is_set()
        if not summary.interrupted:  # done; also skips gaps at the ends (control records, compaction)
            done = _Progress(target, "done", description).encode()
            await consumer.commit({tp: (merger.end[tp], done) for tp in tps})
        if bar is not None and task is not None:
            bar.update(task, completed=summary.events, total=max(summary.total, summary.events),
                       rows=summary.rows)
    except asyncio.CancelledError:
        summary.interrupted = True
        raise
    finally:
        summary.elapsed = time.monotonic() - started
        if bar is not None:
            bar.stop()
        for client in (producer, consumer):
            if client is not None:
                with contextlib.suppress(KafkaError, OSError, TimeoutError):
                    await asyncio.wait_for(client.stop(), timeout=10)
        if own_store:
            await store.close()
    return summary


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} ev/s" if speed else "- ev/s", style="cyan")


def _progress_bar(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        speed_estimate_period=10,
    )


# rebuild -------------------------------------------------------------------------------------
async def rebuild_users(
    settings: Settings, users: Iterable[str], *, kind: str | None = None, store: Store | None = None
) -> dict[str, int]:
    """``fanout rebuild USER``: rebuild each user's timeline(s) from their followees' user feeds
    (``Fanout.rebuild``); returns the entries per user. A given store is not closed."""
    if kind is not None:
        settings = settings.replace(feed_kinds=(kind,))
    own_store = store is None
    if store is None:
        from fanout.cassandra import CassandraStore

        store = await CassandraStore.connect(settings, write_mode="partition_batch")
    try:
        fanout = Fanout(store, settings)
        return {user: await retry_store(ROLE, partial(fanout.rebuild, user)) for user in users}
    finally:
        if own_store:
            await store.close()
