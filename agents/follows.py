"""The follows agent: follow and unfollow events -> the follow graph and follower timelines.

Group ``<prefix>follows`` consumes ``follows`` (key = follower) and runs
``Fanout.handle_follow(event, accepted_ts=record timestamp, in_order=keyed, partition=...)`` for
each record: a
follow records the edge and copies the followee's newest ``follow_activity_limit`` activities
into the follower's feeds; an unfollow removes them. A partition's offsets are committed once its
store writes and dead letters are acknowledged.

The partition order is the truth (``fanout.graph``): each edge keeps the partition of the record
that decided it, and a record of that partition is applied after that decision whatever its
timestamp says; a record of another partition (another client's partitioner for the same
follower, partitions added to the topic, a producer under another key) counts only when its
record timestamp is newer than the edge's last decision (in the same millisecond: when its
partition's number is greater, as a replay merges them). An edge decided by no record (the eager
mode, a library call, an edge older than this rule) takes the key's word: a record produced under
the key ``follower`` (``keyed_by_follower``), by whichever client's partitioner, is in order.

Concurrency within a batch (``follower_lanes``, ``fanout.agents.lanes``)
    A follow costs several store round trips one after the other (``FollowGraph.apply``), so a
    batch is not applied record by record. Its records are decoded first (an undecodable one is
    dead-lettered at once) and grouped into one lane per follower, each lane in partition order;
    up to ``follows_concurrency`` lanes run at once and ``process`` returns when every one has
    finished, so the commit after it covers only acknowledged writes. Running different followers
    concurrently ends in the state the partition order gives: an event reads and writes only its
    follower's rows (the edges keyed by follower, the follower's last activity and own feeds) and
    reads the followee's user feed, which no follow event writes (it is not one of the followers'
    ``feed_kinds``); the events of one follower keep their order, mis-keyed ones included. A
    record's failure is handled in its lane as before (a dead letter); any other failure cancels
    the other lanes, waits for them and is raised as it is, so the batch is retried or stops the
    agent, uncommitted.

Runs of follows (``follow_runs``)
    Within a lane, consecutive follow events to distinct followees (a new user following a
    dozen accounts, a replay of a user's follows) are applied together
    (``FollowGraph.apply_follows``: one read of their edges, their edges written together, the
    followees' feeds in one read, one read of the edges again, instead of each event's own round
    trips; each follow's copies are still one write), ending in the state the
    events give one by one. An unfollow, or a second event for the same followee, starts a new
    piece. When the store refuses a run or one of its events is invalid, its events are applied
    one by one, so only the guilty record is dead-lettered.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

from fanout.activity import now_micros
from fanout.codec import FollowEvent, decode_follow_event, event_time_us
from fanout.core import Fanout
from fanout.errors import InvalidEvent, StoreError
from fanout.settings import Settings
from fanout.store import Store

from . import group_id, metrics
from .base import Agent, record_time_us, retry_store
from .lanes import group_lanes, run_lanes
from .poison import tied_to_record

#: One follower's records of a batch, in partition order, with their decoded events.
Lane = list[tuple[Any, FollowEvent]]

#: Follow events applied together at most (their edges are read in one request).
RUN_MAX = 64


def keyed_by_follower(record: Any, follower: str) -> bool:
    """Whether ``record`` was produced under the key ``follower`` (UTF-8), as the contract asks.
    Every client's partitioner puts one key in one partition, though not the same one: Java's
    murmur2, librdkafka's CRC32 (kcat, confluent-kafka, node-rdkafka), Sarama's FNV-1a. So the
    key, not a partition recomputed with one client's hash, says whether a record of an edge
    without a stored partition is in order (the hash took every librdkafka follower for
    mis-keyed, and after partitions were added to the topic, every follower whose hash moved)."""
    return bool(record.key == follower.encode())


def follower_lanes(records: Sequence[Any], max_bytes: int) -> tuple[list[Lane], list[tuple[Any, InvalidEvent]]]:
    """The records decoded and grouped by follower (``fanout.agents.lanes.group_lanes``)."""
    return group_lanes(records, partial(decode_follow_event, max_bytes=max_bytes), _follower, "follow event")


def _follower(event: FollowEvent) -> tuple[str]:
    return (event.follower,)


def follow_runs(lane: Sequence[tuple[Any, FollowEvent]]) -> list[Lane]:
    """One follower's events cut into the pieces applied one after another, in order: runs of
    consecutive follows to distinct followees of one partition (at most ``RUN_MAX``; the replay
    merges partitions), and each other event alone."""
    pieces: list[Lane] = []
    run: Lane = []
    for item in lane:
        record, event = item
        if (event.op == "follow" and len(run) < RUN_MAX and all(e.followee != event.followee for _, e in run)
                and all(r.partition == record.partition for r, _ in run)):
            run.append(item)
            continue
        if run:
            pieces.append(run)
        if event.op == "follow":
            run = [item]  # starts the next run
        else:
            pieces.append([item])
            run = []
    if run:
        pieces.append(run)
    return pieces


async def apply_follow_run(fanout: Fanout, run: Sequence[tuple[Any, FollowEvent]]) -> list[int]:
    """``Fanout.handle_follow`` of each event of a run (``follow_runs``) in one pass
    (``FollowGraph.apply_follows``); raises the first event's InvalidEvent before any write."""
    follows: list[tuple[str, int, bool]] = []
    for record, event in run:
        accepted = record_time_us(record)
        clock = accepted if accepted is not None else now_micros()
        event_time_us(event, clock, fanout.settings)  # refuses times out of range (reason "time")
        follows.append((event.followee, clock, keyed_by_follower(record, event.follower)))
    return await fanout.graph.apply_follows(run[0][1].follower, follows, run[0][0].partition)


class FollowsAgent(Agent):
    role = "follows"

    def __init__(self, settings: Settings, store: Store, **options: Any) -> None:
        super().__init__(
            settings,
            group=group_id(settings.topic_prefix, "follows"),
            topics=[settings.topic("follows")],
            max_records=settings.follows_batch_max_records,
            fetch_wait_ms=settings.batch_max_wait_ms,
            **options,
        )
        self.fanout = Fanout(store, settings)

    async def process(self, records: list[Any]) -> None:
        lanes, invalid = follower_lanes(records, self.settings.max_event_bytes)
        for record, exc in invalid:
            await self.dead.send(record, exc)
        await run_lanes(lanes, self._apply_lane, self.settings.follows_concurrency)

    async def _apply_lane(self, lane: Lane) -> None:
        for piece in follow_runs(lane):
            if len(piece) > 1:
                await self._apply_run(piece)
            else:
                await self._apply(*piece[0])

    async def _apply_run(self, run: Lane) -> None:
        """A run of follows in one pass; when the store refuses it, or one of its events is
        invalid, each event on its own (a dead letter only for the record at fault)."""
        apply = partial(apply_follow_run, self.fanout, run)
        try:
            await retry_store(self.role, apply, **self.retry_options())
        except InvalidEvent:
            pass
        except StoreError as exc:
            await tied_to_record(self.fanout.store, exc)  # raises unless the store still answers
        else:
            metrics.EVENTS.labels(self.role, "ok").inc(len(run))
            return
        for record, event in run:
            await self._apply(record, event)

    async def _apply(self, record: Any, event: FollowEvent) -> None:
        try:
            accepted = record_time_us(record)
            in_order = keyed_by_follower(record, event.follower)
            handle = partial(self.fanout.handle_follow, event, accepted_ts=accepted, in_order=in_order,
                             partition=record.partition)
            await retry_store(self.role, handle, **self.retry_options())
        except InvalidEvent as exc:
            await self.dead.send(record, exc)
            return
        except StoreError as exc:  # dead-lettered when tied to this record, else raised
            await self.dead.send(record, await tied_to_record(self.fanout.store, exc))
            return
        metrics.EVENTS.labels(self.role, "ok").inc()
