"""Applying a batch of merged records: the planner's and the follows agent's code, concurrently.

Every activity goes through ``Fanout.handle_activity`` (the planner's call: registry, author's
own feed, one chunk per follower group) with ``accepted_ts`` = the record timestamp, every follow
through ``Fanout.handle_follow`` (the follows agent's call); the chunks go to the replay's sink.

Concurrency (same results, faster)
    Within a batch the merged records are cut into runs of consecutive records of one topic. In a
    run of activities, different actors are planned concurrently (one actor's in order) and their
    chunks are buffered and written in bulk; before a run of follows every buffered chunk is
    written (an unfollow reads the follower's timeline), and in a run of follows different
    followers are handled concurrently, each follower's consecutive follows to distinct followees
    together, as the follows agent does (``fanout.agents.follows``: "Runs of follows"). No
    activity runs while a follow runs. So every read sees what it would see in the sequential
    order, except for priorities (HIGH/LOW) which only route chunks. Activities with
    producer-chosen ids that two actors claim start a new run.

Why the end state does not depend on the order anyway
    Every timeline write carries a write timestamp fixed by the event, not by when it is applied
    (``fanout.activity``): a fanout add is written at the activity time; a follow copy and an
    unfollow's deletes at ``FOLLOW_BAND`` + the edge timestamp the event decided (above every add);
    a remove at ``REMOVED_WRITE_TS`` (above everything else); a trim deletes a key range at the
    activity time of its newest row, and each row of it written above that (a follow copy) at its
    own write time (a replay of it stays off, a newer write lands). Follow edges are ordered by the log
    (``fanout.graph``): a replayed follow or unfollow of the partition that decided the edge is
    applied at the edge's last timestamp + 1, so the last event of the partition decides the edge,
    as it did live (a record of another partition counts only when it comes later in this merge's
    order: a newer record timestamp, or the same millisecond and a greater partition). The store
    keeps the newest write of every cell (a delete wins a tie), so the same set of writes gives the
    same timelines in any order, and applying it again changes nothing: replays are idempotent, also
    while live traffic flows. The reads that drive writes complement each other: an activity planned
    before a follow that postdates it is brought in by the follow's copy (the author's own feed is
    written before the fanout), one planned after it by the fanout; an unfollow's deletes outrank
    every add, so a fanout write arriving after it cannot bring the entry back; a removed activity
    is never re-added (the registry remembers the removal). The read-then-write steps of one
    follower (a follow copies the followee's user feed, an unfollow deletes what it finds plus the
    followee's newest activities) need that follower's events in produce order, which the partition
    order keeps. Limits: amortised trimming (a feed holds up to ``max_length`` plus the inserts
    since its last trim, README "Trimming: the bounds"; which ones past ``max_length`` depends on
    when trims ran), and ``follow_activity_limit`` (a follow copies only the followee's newest N
    activities, a replay onto the final graph fans all of them).

Invalid records
    Records that break the wire contract are counted (by reason) and skipped; the live workers
    dead-lettered them when they first saw them, so the replay does not send them again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, Final

from fanout.codec import ActivityEvent, FollowEvent, decode_activity_event, decode_follow_event
from fanout.core import Fanout
from fanout.errors import InvalidEvent
from fanout.settings import Settings

from .base import record_time_us, retry_store
from .follows import apply_follow_run, follow_runs, keyed_by_follower
from .replay_options import ROLE
from .replay_progress import ReplaySummary
from .replay_sinks import FlushingSink

__all__ = ["BatchApplier"]

log = logging.getLogger("fanout.replay")

_CONCURRENCY: Final = 32  # actors (or followers) handled at once within a run


@dataclass(frozen=True, slots=True)
class _Item:
    record: Any
    event: ActivityEvent | FollowEvent


class BatchApplier:
    """Applies batches of merged records with the pipeline's code and counts what it did."""

    def __init__(
        self,
        settings: Settings,
        fanout: Fanout,
        sink: FlushingSink,
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
        self.summary.rows = self.fanout.writer.rows_written

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
            follows = [(item.record, item.event) for item in items if isinstance(item.event, FollowEvent)]
            if len(follows) < len(items):  # activities: one by one
                for item in items:
                    await self._apply(item)
                return
            for piece in follow_runs(follows):  # a follower's follows: runs at once, as the follows agent
                if len(piece) > 1:
                    await self._apply_run(piece)
                else:
                    await self._apply(_Item(*piece[0]))

    async def _apply_run(self, run: list[tuple[Any, FollowEvent]]) -> None:
        """A run of follows in one pass (``follows.apply_follow_run``); one by one when one of
        them is invalid, so that one is counted and skipped."""
        try:
            await retry_store(ROLE, partial(apply_follow_run, self.fanout, run))
        except InvalidEvent:
            for record, event in run:
                await self._apply(_Item(record, event))
            return
        self.summary.follows += len(run)

    async def _apply(self, item: _Item) -> None:
        record, event = item.record, item.event
        accepted = record_time_us(record)  # exactly as the planner and the follows agent
        try:
            if isinstance(event, FollowEvent):
                in_order = keyed_by_follower(record, event.follower)
                apply = partial(self.fanout.handle_follow, event, accepted_ts=accepted, in_order=in_order,
                                partition=record.partition)
                await retry_store(ROLE, apply)
                self.summary.follows += 1
            else:
                await retry_store(ROLE, partial(self.fanout.handle_activity, event, accepted_ts=accepted))
                self.summary.activities += 1
        except InvalidEvent as exc:  # e.g. an activity id claimed by another actor
            self._invalid(record, exc)
