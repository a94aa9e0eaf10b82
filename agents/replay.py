"""Replaying ``activities`` and ``follows`` to rebuild feeds: ``fanout replay``.

``replay(settings, ReplayOptions(...))`` re-reads both topics - from the beginning, from a time
(``since``) or between offsets - and runs every event through the same code as the live pipeline:
``Fanout.handle_activity`` (the planner) with chunks applied in-process by ``Fanout.writer``
(the ``TimelineWriter`` the writer agents use), and ``Fanout.handle_follow`` (the follows agent),
on the Cassandra store. ``via_kafka=True`` publishes the chunks to the ``high``/``low`` topics
instead, for the writer agents to apply. Uses: after a bug, a schema or trimming change, a lost
table (``drop_timelines=True`` truncates the timeline table first) or a new feed kind (``kind=``).
Operating it: agents/REPLAY.md.

A replay in modules, in the order a record meets them:

    replay_options   what to replay (``ReplayOptions``), checked and fingerprinted (``ReplayPlan``)
    replay           this module: the clients, the offsets, the batch loop, catching up, commits
    replay_merge     both topics merged into one history by record timestamp (``Merger``)
    replay_apply     each batch applied with the planner's and follows agent's code (``BatchApplier``)
    replay_sinks     the chunks written in bulk, filtered to some users, or published
    replay_progress  the summary, the progress bar, the commit metadata that makes it resumable
    rebuild          ``fanout rebuild USER``: single timelines from the followees' feeds, no Kafka

Consumer group and catching up
    The replay reads with its own consumer group (``<prefix>replay``, or ``group=``), by manual
    assignment of every partition of both topics, so the live workers keep running and are never
    rebalanced. After each batch's writes are acknowledged it commits, per partition, the offset
    after the last record it processed (``replay_progress``: resuming and conflicts). Without
    explicit ``end_offsets`` a replay runs to the log end it saw at the start and then catches up
    (up to ``_CATCH_UP_ROUNDS`` times) with the records appended meanwhile, so a follow that
    arrived during the replay is applied after the activities it copies were rewritten.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from typing import Any, Final

from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from rich.console import Console

from fanout.core import Fanout
from fanout.kafka import KafkaClients
from fanout.settings import Settings
from fanout.store import Store

from .base import make_producer
from .replay_apply import BatchApplier
from .replay_merge import Merger
from .replay_options import SOURCES, Offsets, ReplayOptions, ReplayPlan, offsets_for, plan_replay
from .replay_progress import CommitMark, ProgressBar, ReplayConflict, ReplaySummary, resumable
from .replay_sinks import BufferedWriterSink, FlushingSink, PublishingSink, UserFilterSink
from .topics import check_topics, committed_offsets, describe_topics

__all__ = ["SOURCES", "Offsets", "ReplayConflict", "ReplayOptions", "ReplaySummary", "replay"]

log = logging.getLogger("fanout.replay")

_CATCH_UP_ROUNDS: Final = 5
_CLIENT_ID: Final = "fanout-replay"


async def replay(
    settings: Settings,
    options: ReplayOptions = ReplayOptions(),  # noqa: B008 - frozen, never mutated
    *,
    store: Store | None = None,
    stop: asyncio.Event | None = None,
    progress: bool = True,
    console: Console | None = None,
) -> ReplaySummary:
    """Replay ``activities`` and ``follows`` into the timelines as ``options`` say.

    ``store``: default ``CassandraStore.connect(settings)`` (migrated; closed at the end; a given
    store is not closed). ``stop``: set it to stop after the batch in progress (committed);
    cancelling abandons the batch (re-done on resume). ``progress``: a progress bar on
    ``console`` (default: stderr).
    """
    plan = plan_replay(settings, options)
    await check_topics(plan.settings, SOURCES + (("high", "low") if options.via_kafka else ()))
    summary = ReplaySummary(group=plan.group)
    bar = ProgressBar(console, enabled=progress)
    async with contextlib.AsyncExitStack() as clients:  # closed last in, first out
        if store is None:
            store = await clients.enter_async_context(_own_store(plan.settings))
        run = _Replay(plan, store, summary, bar, clients)
        started = time.monotonic()
        try:
            await run.open_partitions()
            await run.place_offsets()
            await run.resume_or_begin()
            applier = await run.applier()
            merger = run.merger()
            await run.batches(applier, merger, stop or asyncio.Event())
        except asyncio.CancelledError:
            summary.interrupted = True
            raise
        finally:
            summary.elapsed = time.monotonic() - started
            bar.stop()
    return summary


class _Replay:
    """The steps of one ``replay()`` call and what they share: the consumer and the offsets."""

    def __init__(
        self,
        plan: ReplayPlan,
        store: Store,
        summary: ReplaySummary,
        bar: ProgressBar,
        clients: contextlib.AsyncExitStack,
    ) -> None:
        self.plan = plan
        self.settings = plan.settings
        self.options = plan.options
        self.store = store
        self.summary = summary
        self.bar = bar
        self.clients = clients
        self.topics = {short: plan.settings.topic(short) for short in SOURCES}
        self.running = CommitMark.of(plan, "running").encode()
        self.consumer: Any = None
        self.tps: list[TopicPartition] = []
        self.begin: dict[TopicPartition, int] = {}
        self.high_water: dict[TopicPartition, int] = {}
        self.start: dict[TopicPartition, int] = {}
        self.end: dict[TopicPartition, int] = {}

    async def open_partitions(self) -> None:
        """Start the consumer and assign it every partition of both topics (no group membership)."""
        self.consumer = KafkaClients(self.settings).consumer(
            _CLIENT_ID,
            group_id=self.plan.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=4 * 1024 * 1024,
        )
        self.clients.push_async_callback(_stop_client, self.consumer)
        await self.consumer.start()
        partitions = await describe_topics(self.settings)
        self.tps = [
            TopicPartition(topic, p) for topic in self.topics.values() for p in range(partitions[topic])
        ]
        self.consumer.assign(self.tps)
        self.begin = await self.consumer.beginning_offsets(self.tps)
        self.high_water = await self.consumer.end_offsets(self.tps)

    async def place_offsets(self) -> None:
        """Where a fresh replay starts (``since``, ``start_offsets``) and ends (``end_offsets``),
        within what the log holds."""
        begin, high_water = self.begin, self.high_water
        self.start = dict(begin)
        if self.plan.since_ms is not None:
            found = await self.consumer.offsets_for_times(dict.fromkeys(self.tps, self.plan.since_ms))
            for tp in self.tps:
                hit = found.get(tp)
                self.start[tp] = high_water[tp] if hit is None else max(begin[tp], hit.offset)
        self.end = dict(high_water)
        for short, topic in self.topics.items():
            parts = [tp.partition for tp in self.tps if tp.topic == topic]
            for placed, spec in ((self.start, self.options.start_offsets), (self.end, self.options.end_offsets)):
                for p, off in offsets_for(spec, short, topic, parts).items():
                    tp = TopicPartition(topic, p)
                    placed[tp] = min(max(off, begin[tp]), high_water[tp])

    async def resume_or_begin(self) -> None:
        """Resume the same unfinished replay from its commits, or begin: drop the timelines when
        asked, and commit the start offsets as running (``reset`` ignores the group's progress)."""
        committed = {} if self.options.reset else await self._committed()
        was = resumable(self.plan, (meta.metadata for meta in committed.values()))
        if was is not None:
            self.summary.resumed = True
            for tp, meta in committed.items():
                self.start[tp] = max(self.begin[tp], min(meta.offset, self.high_water[tp]))
            log.info("replay: resuming the unfinished replay of group %s (%s) from its commits", self.plan.group, was)
            return
        if self.options.drop_timelines:
            log.warning("replay: dropping every timeline before a full replay")
            await self.store.drop_timelines()
        await self.consumer.commit({tp: (self.start[tp], self.running) for tp in self.tps})

    async def _committed(self) -> dict[TopicPartition, Any]:
        async with KafkaClients(self.settings).admin() as admin:
            offsets = await committed_offsets(admin, self.plan.group, self.tps)
        return {tp: meta for tp, meta in offsets.items() if meta.offset >= 0}

    async def applier(self) -> BatchApplier:
        """The pipeline's code on the store, its chunks going to the replay's sink."""
        fanout = Fanout(self.store, self.settings)
        sink: FlushingSink
        if self.options.via_kafka:
            from .planner import KafkaChunkSink

            producer = make_producer(self.settings, _CLIENT_ID)
            self.clients.push_async_callback(_stop_client, producer)
            await producer.start()
            sink = PublishingSink(KafkaChunkSink(producer, self.settings), self.summary)
        else:
            sink = BufferedWriterSink(fanout.writer, self.summary)
        users = self.plan.users
        fanout.sink = sink if users is None else UserFilterSink(sink, users, self.settings.feed_kinds)
        return BatchApplier(self.settings, fanout, sink, self.summary, users)

    def merger(self) -> Merger:
        """The timestamp merge over ``[start, end)`` of every partition."""
        ranks = {self.topics[short]: rank for rank, short in enumerate(SOURCES)}
        merger = Merger(self.consumer, ranks, fetch_ms=max(self.settings.batch_max_wait_ms, 100))
        for tp in self.tps:
            self.start[tp] = min(self.start[tp], self.end[tp])
            merger.add(tp, self.start[tp], self.end[tp])
        self.summary.total = sum(self.end[tp] - self.start[tp] for tp in self.tps)
        log.info("replay: group %s, %s, %d records%s", self.plan.group, self.plan.description, self.summary.total,
                 " (resumed)" if self.summary.resumed else "")
        return merger

    async def batches(self, applier: BatchApplier, merger: Merger, stop: asyncio.Event) -> None:
        """The batch loop: apply a batch, commit it, show it; at the log end catch up, and once
        everything is replayed mark the replay done."""
        self.bar.start(self.summary.total)
        rounds = 0
        while not stop.is_set():
            batch = await merger.next_batch(self.settings.batch_max_records)
            if batch:
                await self._apply(applier, batch)
                continue
            if not self.plan.catch_up or rounds >= _CATCH_UP_ROUNDS or not await self._catch_up(merger):
                break
            rounds += 1
        self.summary.interrupted = stop.is_set()
        if not self.summary.interrupted:  # done; also skips gaps at the ends (control records, compaction)
            done = CommitMark.of(self.plan, "done").encode()
            await self.consumer.commit({tp: (merger.end[tp], done) for tp in self.tps})
        self.bar.finish(self.summary)

    async def _apply(self, applier: BatchApplier, batch: list[Any]) -> None:
        await applier.process(batch)
        last: dict[TopicPartition, int] = {}
        for record in batch:
            last[TopicPartition(record.topic, record.partition)] = record.offset
        await self.consumer.commit({tp: (offset + 1, self.running) for tp, offset in last.items()})
        self.summary.batches += 1
        self.bar.advance(self.summary)

    async def _catch_up(self, merger: Merger) -> bool:
        """Extend the merge to the records appended since; ``False`` when there are none."""
        latest = await self.consumer.end_offsets(self.tps)
        grown = {tp: latest[tp] for tp in self.tps if latest[tp] > merger.end[tp]}
        for tp, new_end in grown.items():
            self.summary.total += new_end - merger.end[tp]
            merger.extend(tp, new_end)
        if grown:
            self.bar.set_total(self.summary.total)
        return bool(grown)


@contextlib.asynccontextmanager
async def _own_store(settings: Settings) -> AsyncIterator[Store]:
    """The Cassandra store a replay opens (and migrates) when it is given none; closed on exit."""
    from fanout.cassandra import CassandraStore

    store = await CassandraStore.connect(settings, write_mode="replica_batch")
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()


async def _stop_client(client: Any) -> None:
    with contextlib.suppress(KafkaError, OSError, TimeoutError):
        await asyncio.wait_for(client.stop(), timeout=10)
