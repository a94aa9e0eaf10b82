"""The planner agent: activity events -> chunk messages on the ``high`` and ``low`` topics.

Group ``<prefix>planner`` consumes ``activities`` (key = actor). For every record it runs
``Fanout.handle_activity(event, accepted_ts=record timestamp)`` (several at once: below), which
updates the registry and the author's own feed in the store and hands each chunk to
``KafkaChunkSink``. The offsets of a batch are committed only after every produced chunk (and
dead letter) is acknowledged by the broker, so a crash re-plans the batch; re-planning produces
the same chunks (deterministic ids and write timestamps), which the writers apply idempotently.

Each partition is planned by its own task (``fanout.agents.base``); a partition is committed once
ITS chunks are acknowledged, so one 1M-follower activity holds back only its own partition.
Within a batch the records are planned in lanes (``fanout.agents.lanes``), one per actor, up to
``FANOUT_PLANNER_CONCURRENCY`` lanes at once: all events of one actor are planned in the order
they were produced, and one large account's posts do not hold back the other actors' posts of the
batch (whose HIGH chunks would otherwise wait behind them). A lane's events go to
``Fanout.handle_activities`` together (up to ``RUN_MAX``): an actor's consecutive adds are
registered together (``fanout.registering``) and fanned out in one pass over its followers
(``fanout.pushing``), their chunks interleaved; a remove is planned after the adds before it.
Events of different actors that name the same explicit ``id`` share a lane too (the registry row
of that id decides which one is refused as a conflict, so their order must stay the partition's).
What else actors share is a follower's activity mark: an actor's post marks it active in the
follower rows of the accounts it follows, so another account's post in the same batch may see that
mark earlier or later than in partition order and put that follower in the other priority; the
feeds end the same, and across partitions (several planners) this was always so.

Chunk keys: the first feed id of the chunk. The same follower page of an actor lands on the same
partition each time (its add and its remove are applied by the same writer, in order) and one
writer sees most writes of a feed, which keeps the amortised trimming of ``TimelineWriter``
close to its per-feed budget.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from fanout.codec import ActivityEvent, ChunkMessage, decode_activity_event, encode
from fanout.core import Fanout
from fanout.errors import InvalidEvent, StoreError
from fanout.kafka import Acks
from fanout.settings import Settings
from fanout.store import Store

from . import group_id, metrics
from .base import Agent, record_time_us, retry_store
from .lanes import Lane, group_lanes, run_lanes
from .poison import tied_to_record

#: An actor's consecutive adds planned in one call at most (``Fanout.handle_activities``).
RUN_MAX = 32


class KafkaChunkSink:
    """A ``ChunkSink`` that produces each chunk to the topic of its priority; ``acks`` collects
    the broker's acknowledgements (the planner's are per partition task: ``TaskAcks``)."""

    def __init__(self, producer: Any, settings: Settings, acks: Acks | None = None) -> None:
        self.producer = producer
        self.topics = {"high": settings.topic("high"), "low": settings.topic("low")}
        self.acks = acks if acks is not None else Acks()

    async def send(self, chunk: ChunkMessage) -> None:
        key = (chunk.feeds[0] if chunk.feeds else chunk.activity.id).encode()
        self.acks.add(await self.producer.send(self.topics[chunk.priority], value=encode(chunk), key=key))
        metrics.CHUNKS_PLANNED.labels(chunk.priority).inc()

    async def flush(self) -> None:
        """Wait until the broker acknowledged every chunk sent so far."""
        await self.acks.flush()


class PlannerAgent(Agent):
    role = "planner"

    def __init__(self, settings: Settings, store: Store, **options: Any) -> None:
        super().__init__(
            settings,
            group=group_id(settings.topic_prefix, "planner"),
            topics=[settings.topic("activities")],
            max_records=settings.batch_max_records,
            fetch_wait_ms=settings.batch_max_wait_ms,
            **options,
        )
        self.store = store
        self.sink: KafkaChunkSink
        self.fanout: Fanout

    async def on_started(self) -> None:
        self.sink = KafkaChunkSink(self.producer, self.settings, self.acks)
        self.fanout = Fanout(self.store, self.settings, sink=self.sink)

    async def process(self, records: list[Any]) -> None:
        decode = partial(decode_activity_event, max_bytes=self.settings.max_event_bytes)
        lanes, invalid = group_lanes(records, decode, _lane_keys, "activity event")
        for record, exc in invalid:
            await self.dead.send(record, exc)
        await run_lanes(lanes, self._plan_lane, self.settings.planner_concurrency)

    async def _plan_lane(self, lane: Lane[ActivityEvent]) -> None:
        for part in post_runs(lane):
            if len(part) == 1:
                await self._one(*part[0])
            else:
                await self._run(part)

    async def _run(self, part: Lane[ActivityEvent]) -> None:
        """Plan a run of one actor's adds in one call (its followers read once); a refused event
        is dead-lettered with its reason. A retriable failure plans the run again (its adds are
        fanned out at its end: a failure before then sends nothing twice, one during the fanout
        sends the run's chunks again, idempotent writes); if
        the store refuses the call, the events are planned one by one, so only a record the store
        refuses is lost."""
        pairs = [(event, record_time_us(record)) for record, event in part]
        try:
            outcomes = await retry_store(
                self.role, partial(self.fanout.handle_activities, pairs), **self.retry_options()
            )
        except StoreError as exc:
            await tied_to_record(self.store, exc)  # re-raised when retriable or the store is broken
            for record, event in part:
                await self._one(record, event)
            return
        for (record, _), outcome in zip(part, outcomes, strict=True):
            if isinstance(outcome, InvalidEvent):
                await self.dead.send(record, outcome)
            else:
                metrics.EVENTS.labels(self.role, "ok").inc()

    async def _one(self, record: Any, event: ActivityEvent) -> None:
        try:
            accepted = record_time_us(record)  # no timestamp: the planner's clock
            await retry_store(self.role, partial(self.fanout.handle_activity, event, accepted_ts=accepted),
                              **self.retry_options())
        except InvalidEvent as exc:
            await self.dead.send(record, exc)
            return
        except StoreError as exc:  # dead-lettered when tied to this record, else raised
            await self.dead.send(record, await tied_to_record(self.store, exc))
            return
        metrics.EVENTS.labels(self.role, "ok").inc()


def post_runs(lane: Lane[ActivityEvent]) -> list[Lane[ActivityEvent]]:
    """A lane cut into the pieces planned one after another, in order: runs of one actor's
    consecutive adds (at most ``RUN_MAX``), and each other event alone."""
    pieces: list[Lane[ActivityEvent]] = []
    for item in lane:
        event = item[1]
        first = pieces[-1][0][1] if pieces else None  # a piece of several is a run of adds
        if first is not None and first.op == event.op == "add" and first.actor == event.actor \
                and len(pieces[-1]) < RUN_MAX:
            pieces[-1].append(item)
        else:
            pieces.append([item])
    return pieces


def _lane_keys(event: ActivityEvent) -> list[tuple[str, str]]:
    """An event's lane keys: its actor, and its explicit id (two actors naming one id race on the
    registry row: their events keep their partition order, so the second is refused as before)."""
    return [("actor", event.actor)] + ([("id", event.id)] if event.id else [])
