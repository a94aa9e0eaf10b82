"""The consumer loop every agent shares: fetch a batch, process it, commit exactly that batch.

Why aiokafka with manual commits, and not faust streams
-------------------------------------------------------
The guarantee the pipeline needs is at-least-once into Cassandra: an offset may be committed
only after every write of the records before it has been acknowledged. faust-streaming's
``stream.take()`` acknowledges every buffered event in a ``finally:`` block even when the
processing of the batch raised (faust issue #189), so a failed Cassandra batch would be
committed and lost; and a known race can commit an offset past an event that is still in
flight (#606). Rather than prove faust's acking right under kills, the agents drive
``AIOKafkaConsumer`` directly with ``enable_auto_commit=False``:

1. ``getmany(timeout_ms=batch_max_wait_ms, max_records=batch_max_records)``;
2. ``process(batch)`` does all the work: store writes acknowledged, produced messages
   (chunks, dead letters) acknowledged by the broker (``acks=all``, idempotent producer);
3. only then ``commit({partition: last offset + 1})`` for exactly the partitions of that batch.

A crash anywhere before 3 re-delivers the batch; every write is an idempotent upsert keyed by
(feed, activity id) with a deterministic write timestamp, so a re-delivery changes nothing.

Records of one partition are processed in order (the agents never reorder them); different
partitions may be processed concurrently. A rebalance waits (``on_partitions_revoked``) for
the batch in progress and its commit, so a partition changes owner at a batch boundary.

Shutdown: ``stop`` (SIGTERM/SIGINT in a worker process) ends fetching; the batch in progress
gets ``grace_seconds`` to finish and be committed, else it is abandoned uncommitted; then the
consumer and producer are closed. Cancelling ``run()`` abandons the batch at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from fanout.errors import StoreError
from fanout.kafka import Acks, KafkaClients
from fanout.retry import retry
from fanout.settings import Settings

from . import metrics
from .deadletters import DeadLetters
from .topics import check_topics

log = logging.getLogger("fanout.agents")

Batch = dict[TopicPartition, list[Any]]  # partition -> ConsumerRecords, in offset order
T = TypeVar("T")

MAX_BACKOFF_S = 5.0


class RetryBatch(Exception):
    """``process`` asks the loop to re-deliver the whole batch (seek back) after a backoff."""


def make_producer(settings: Settings, client_id: str) -> Any:
    """The agents' producer: ``acks=all``, idempotent, 256 KiB batches (chunks are large)."""
    return KafkaClients(settings).producer(client_id, max_batch_size=256 * 1024)


def record_time_us(record: Any) -> int | None:
    """A Kafka record's timestamp in microseconds, or None when it has none (-1 or missing).

    The planner and the follows agent use it as an event's accepted time, so a replay of the
    same record derives the same activity time and id.
    """
    timestamp = record.timestamp
    return timestamp * 1000 if timestamp is not None and timestamp >= 0 else None


async def retry_store(role: str, op: Callable[[], Awaitable[T]]) -> T:
    """Run ``op`` until it succeeds, backing off after each retriable ``StoreError``.

    A non-retriable error propagates (the worker stops without committing). Retrying does not
    end on ``stop``: the loop's grace period bounds it and then abandons the batch.
    """

    def count(exc: BaseException, delay: float) -> None:
        metrics.STORE_RETRIES.labels(role).inc()
        log.warning("%s: retriable store error, retrying in %.2fs: %s", role, delay, exc)

    return await retry(op, retriable=_retriable_store_error, max_delay=MAX_BACKOFF_S, on_retry=count)


def _retriable_store_error(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.retriable


async def each_partition(batch: Batch, handle: Callable[[list[Any]], Coroutine[Any, Any, None]]) -> None:
    """Run ``handle(records)`` for every partition of the batch concurrently (the records of one
    partition stay in order, in one task); the first failure propagates as itself."""
    try:
        async with asyncio.TaskGroup() as group:
            for records in batch.values():
                group.create_task(handle(records))
    except ExceptionGroup as failed:
        raise failed.exceptions[0] from None


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # The batch in progress (and its commit) finishes before the partitions move.
        async with self.agent.batch_lock:
            log.info("%s: partitions revoked: %s", self.agent.role, _tps(revoked))

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("%s: partitions assigned: %s", self.agent.role, _tps(assigned))
        self.agent.running.set()


def _tps(tps: Any) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)) or "none"


class Agent:
    """One consumer group member. Subclasses implement ``process(batch)`` and ``role``."""

    role = "agent"

    def __init__(
        self,
        settings: Settings,
        *,
        group: str,
        topics: list[str],
        max_records: int,
        fetch_wait_ms: int,
        instance_id: str | None = None,
        grace_seconds: float = 6.0,
        session_timeout_ms: int = 10_000,
    ) -> None:
        self.settings = settings
        self.group = group
        self.topics = topics
        self.max_records = max_records
        self.fetch_wait_ms = fetch_wait_ms
        self.instance_id = instance_id
        self.grace_seconds = grace_seconds
        self.session_timeout_ms = session_timeout_ms
        self.batch_lock = asyncio.Lock()
        self.consumer: Any = None
        self.producer: Any = None
        self.dead: DeadLetters
        self.stop_event = asyncio.Event()
        self.batches = 0
        self.records = 0
        self.running = asyncio.Event()  # set once the consumer joined its group (got partitions)

    async def process(self, batch: Batch) -> None:
        raise NotImplementedError

    async def on_started(self) -> None:
        """Hook: after the producer started, before the first fetch."""

    async def acknowledged(self, *acks: Acks) -> None:
        """Wait for the broker to acknowledge what the batch produced (dead letters included);
        a failure re-delivers the whole batch (``RetryBatch``), nothing is committed."""
        try:
            for pending in (*acks, self.dead.acks):
                await pending.flush()
        except KafkaError as exc:
            for pending in (*acks, self.dead.acks):
                pending.discard()
            raise RetryBatch(f"producing to Kafka failed: {exc!r}") from exc

    # lifecycle ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set (graceful) or the task is cancelled."""
        if stop is not None:
            self.stop_event = stop
        await check_topics(self.settings)
        self.producer = make_producer(self.settings, f"fanout-{self.role}")
        self.consumer = KafkaClients(self.settings).consumer(
            f"fanout-{self.role}",
            group_id=self.group,
            group_instance_id=self.instance_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.session_timeout_ms // 3),
            max_poll_interval_ms=600_000,
        )
        self.dead = DeadLetters(self.producer, self.settings, self.role)
        try:
            await self.producer.start()
            await self.on_started()
            self.consumer.subscribe(self.topics, listener=_Rebalance(self))
            await self.consumer.start()
            log.info("%s: consuming %s as group %s", self.role, ",".join(self.topics), self.group)
            await self._loop()
        finally:
            await self._close()

    async def _close(self) -> None:
        for name, client in (("consumer", self.consumer), ("producer", self.producer)):
            if client is None:
                continue
            try:
                await asyncio.wait_for(client.stop(), timeout=2)
            except (TimeoutError, KafkaError, OSError) as exc:
                log.warning("%s: closing the %s failed: %s", self.role, name, exc)
        log.info("%s: stopped after %d batches, %d records", self.role, self.batches, self.records)

    # the loop ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        backoff = 0.1
        while not self.stop_event.is_set():
            fetched = await self.consumer.getmany(timeout_ms=self.fetch_wait_ms, max_records=self.max_records)
            if not fetched or self.stop_event.is_set():
                continue
            async with self.batch_lock:
                assigned = self.consumer.assignment()
                batch = {tp: recs for tp, recs in fetched.items() if recs and tp in assigned}
                if not batch:
                    continue
                started = time.monotonic()
                try:
                    finished = await self._process_bounded(batch)
                except RetryBatch as exc:
                    log.warning("%s: batch failed, re-delivering it in %.1fs: %s", self.role, backoff, exc)
                    assigned = self.consumer.assignment()
                    for tp, recs in batch.items():
                        if tp in assigned:
                            self.consumer.seek(tp, recs[0].offset)
                    await self._sleep(backoff)
                    backoff = min(backoff * 2, MAX_BACKOFF_S)
                    continue
                if not finished:
                    return  # abandoned on shutdown: nothing committed
                backoff = 0.1
                await self._commit(batch)
                self.batches += 1
                self.records += sum(len(r) for r in batch.values())
                metrics.BATCH_SECONDS.labels(self.role).observe(time.monotonic() - started)

    async def _process_bounded(self, batch: Batch) -> bool:
        """Process the batch; on stop give it ``grace_seconds``. False = abandoned."""
        task = asyncio.ensure_future(self.process(batch))
        stopper = asyncio.ensure_future(self.stop_event.wait())
        try:
            await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if not task.done():
                await asyncio.wait({task}, timeout=self.grace_seconds)
            if not task.done():
                log.warning("%s: abandoning an unfinished batch on shutdown (not committed)", self.role)
                return False
            task.result()
            return True
        finally:
            stopper.cancel()
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _commit(self, batch: Batch) -> None:
        offsets = {tp: recs[-1].offset + 1 for tp, recs in batch.items()}
        try:
            await self.consumer.commit(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the new owner re-delivers these records (idempotent writes).
            log.warning("%s: commit failed (rebalance), records will be re-delivered: %s", self.role, exc)
            return
        metrics.COMMITS.labels(self.role).inc()

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)
