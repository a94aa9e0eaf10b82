"""The consumer loop every agent shares: fetch, process each partition on its own, commit it.

Why aiokafka with manual commits, and not faust streams
-------------------------------------------------------
The guarantee the pipeline needs is at-least-once into Cassandra: an offset may be committed
only after every write of the records before it has been acknowledged. faust-streaming's
``stream.take()`` acknowledges every buffered event in a ``finally:`` block even when the
processing of the batch raised (faust issue #189), so a failed Cassandra batch would be
committed and lost; and a known race can commit an offset past an event that is still in
flight (#606). Rather than prove faust's acking right under kills, the agents drive
``AIOKafkaConsumer`` directly with ``enable_auto_commit=False``.

One in-order task per partition
-------------------------------
1. ``getmany(timeout_ms=batch_max_wait_ms, max_records=batch_max_records)``; for each partition
   that returned records: ``pause`` it and start its task (at most one per partition, so the
   records of a partition are processed in order, one batch after the other);
2. the task runs ``process(records)``: store writes acknowledged (a retriable ``StoreError`` is
   retried ``agent_retry_attempts`` times within ``agent_retry_within_s``), then waits for the
   broker to acknowledge what these records produced (chunks, dead letters; ``acks=all``);
3. only then it commits ``{partition: last offset + 1}`` and ``resume``s the partition.

A retriable failure of a task (store, broker) seeks its partition back to the batch's first
record and resumes it after a backoff (0.1 s doubling to 5 s): the records are re-fetched and
re-processed; nothing of theirs was committed. The loop keeps fetching and committing the other
partitions meanwhile, so one failing partition or one huge activity (a 1M-follower fanout) holds
only its own partition. A crash anywhere before 3 re-delivers the batch; every write is an
idempotent upsert keyed by (feed, activity id) with a deterministic write timestamp, so a
re-delivery changes nothing.

Rebalances: ``on_partitions_revoked`` gives the tasks of the revoked partitions ``grace_seconds``
to finish and commit, then cancels them (uncommitted: their new owner re-delivers them). No task
holds a lock the rebalance waits for, so a rebalance never waits for ``max_poll_interval_ms``.

Shutdown: ``stop`` (SIGTERM/SIGINT in a worker process) ends fetching; the tasks in progress get
``grace_seconds`` to finish and be committed, else they are abandoned uncommitted; then the
consumer and producer are closed. Cancelling ``run()`` abandons them at once. A non-retriable
error of any task stops the agent the same way and ``run()`` raises it.

Health: see ``fanout.agents.health`` (``/healthz``, stall exit) and ``fanout.agents.connectivity``
(one log line per Kafka outage); a producer in a fatal state is replaced
(``fanout.agents.producing``), and so is a consumer whose fetches keep failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any, TypeVar

from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError

from fanout.errors import StoreError
from fanout.kafka import KafkaClients
from fanout.retry import retry
from fanout.settings import Settings

from . import metrics, offsets
from .connectivity import KafkaConnectivity, QuietKafkaLogs
from .deadletters import DeadLetterLog, DeadLetters
from .health import Health
from .partitions import FIRST_BACKOFF_S, MAX_BACKOFF_S, Partitions, tps_text
from .producing import AgentProducer, RetryBatch, TaskAcks
from .quietlogs import QuietDriverLogs
from .topics import check_topics

log = logging.getLogger("fanout.agents")

T = TypeVar("T")

CONSUMER_FAILURES_BEFORE_RENEWAL = 3

__all__ = ["Agent", "DeadLetters", "RetryBatch", "make_producer", "record_time_us", "retry_store"]


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


async def retry_store(
    role: str, op: Callable[[], Awaitable[T]], *, attempts: int | None = None, within: float | None = None
) -> T:
    """Run ``op``, backing off after each retriable ``StoreError``, at most ``attempts`` times
    within ``within`` seconds (both None: until it succeeds); the last error then propagates.

    The agents bound it (``agent_retry_attempts``/``agent_retry_within_s``): their partition is
    then sought back and re-fetched later, so no rebalance waits for a store that is down. A
    non-retriable error propagates at once (the worker stops without committing).
    """

    def count(exc: BaseException, delay: float) -> None:
        metrics.STORE_RETRIES.labels(role).inc()
        log.debug("%s: retriable store error, retrying in %.2fs: %s", role, delay, exc)

    return await retry(
        op, retriable=_retriable_store_error, attempts=attempts, within=within, max_delay=MAX_BACKOFF_S,
        on_retry=count,
    )


def _retriable_store_error(exc: BaseException) -> bool:
    return isinstance(exc, StoreError) and exc.retriable


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def on_partitions_revoked(self, revoked: Any) -> None:
        # The revoked partitions' tasks get the grace period to finish and commit, no more.
        log.info("%s: partitions revoked: %s", self.agent.role, tps_text(revoked))
        await self.agent.partitions.drain(set(revoked), self.agent.grace_seconds)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        log.info("%s: partitions assigned: %s", self.agent.role, tps_text(assigned))
        consumer = self.agent.consumer
        # Nothing is fetched from them before their start is settled (aiokafka runs this while
        # the fetcher may already resolve positions with its reset policy).
        consumer.pause(*assigned)
        try:
            await self.agent.on_assigned(set(assigned))
        except Exception as exc:  # aiokafka would only log it: stop the agent with it instead
            self.agent.fail(exc)
            return
        consumer.resume(*assigned)
        self.agent.running.set()


class Agent:
    """One consumer group member. Subclasses implement ``process(records)`` and ``role``."""

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
        start_from: str | None = None,
    ) -> None:
        if start_from not in (None, *offsets.START_FROM):
            raise ValueError(f"start_from must be 'earliest', 'latest' or None, not {start_from!r}")
        self.start_from = start_from
        self.settings = settings
        self.group = group
        self.topics = topics
        self.max_records = max_records
        self.fetch_wait_ms = fetch_wait_ms
        self.instance_id = instance_id
        self.grace_seconds = grace_seconds
        self.session_timeout_ms = session_timeout_ms
        self.consumer: Any = None
        self.producer: AgentProducer
        self.acks = TaskAcks()  # the chunks each partition task produced, flushed before it commits
        self._task_dead: ContextVar[DeadLetters] = ContextVar("fanout_dead_letters")
        self.dead_lines = DeadLetterLog()  # every task's dead letters share the rate of their log lines
        self._dead: DeadLetters | None = None  # outside partition tasks (hooks, tests)
        self.dead_letters_sent = 0
        self.stop_event = asyncio.Event()
        self.running = asyncio.Event()  # set once the consumer joined its group (got partitions)
        self.failure: BaseException | None = None  # a non-retriable error: the agent stops with it
        self.partitions = Partitions(self)
        self.consumer_renewals = 0
        self.health = Health(self.role, settings.agent_stall_timeout_s)
        self.kafka = KafkaConnectivity(self.role, self._probe)

    @property
    def dead(self) -> DeadLetters:
        """The dead letters of the current partition task: each task waits for its own only."""
        try:
            return self._task_dead.get()
        except LookupError:
            if self._dead is None:
                raise RuntimeError("no dead-letter producer before run() (or set agent.dead)") from None
            return self._dead

    @dead.setter
    def dead(self, letters: DeadLetters) -> None:
        self._dead = letters

    def begin_task(self) -> None:
        """A partition task starts: its own acknowledgements to wait for, chunks and dead letters."""
        self.acks.begin()
        self._task_dead.set(DeadLetters(self.producer, self.settings, self.role, self.dead_lines))

    def end_task(self) -> None:
        self.dead_letters_sent += self._task_dead.get().count

    @property
    def batches(self) -> int:
        """Partition batches processed and committed."""
        return self.partitions.batches

    @property
    def records(self) -> int:
        """Records processed and committed."""
        return self.partitions.records

    async def process(self, records: list[Any]) -> None:
        """Process the records of one partition, in order (store writes acknowledged on return;
        what they produced goes through ``self.producer`` / ``self.dead``)."""
        raise NotImplementedError

    async def on_started(self) -> None:
        """Hook: after the producer started, before the first fetch."""

    async def on_assigned(self, assigned: set[TopicPartition]) -> None:
        """Partitions were assigned (before they are fetched): settle where the group starts on
        the ones it never committed (``fanout.agents.offsets``)."""
        settled = await offsets.settle(self.consumer, assigned, group=self.group, role=self.role,
                                       start_from=self.start_from)
        self.partitions.committed.update(settled)

    def retry_options(self) -> dict[str, Any]:
        """``retry_store`` bounds for the agents: ``attempts`` and ``within`` from the settings."""
        return {"attempts": self.settings.agent_retry_attempts, "within": self.settings.agent_retry_within_s}

    # lifecycle ---------------------------------------------------------------------------
    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Consume until ``stop`` is set (graceful) or the task is cancelled; raise the error of
        a task that failed for good (after the others had their grace period)."""
        if stop is not None:
            self.stop_event = stop
        self.producer = AgentProducer(self.settings, f"fanout-{self.role}", self.role)
        self.dead = DeadLetters(self.producer, self.settings, self.role, self.dead_lines)
        quiet = QuietKafkaLogs(self.kafka)
        quiet.install()
        quiet_driver = QuietDriverLogs()
        quiet_driver.install()
        watchdog: asyncio.Task[None] | None = None
        graceful = True
        try:
            await check_topics(self.settings)
            await self.producer.start()
            await self.on_started()
            await self._start_consumer()
            watchdog = asyncio.ensure_future(self._watchdog())
            await self._loop()
        except asyncio.CancelledError:
            graceful = False
            raise
        finally:
            self.health.set("stopping")
            if watchdog is not None:
                watchdog.cancel()
                await asyncio.gather(watchdog, return_exceptions=True)
            await self.partitions.drain(set(self.partitions.work), self.grace_seconds if graceful else 0.0)
            await self._close()
            await self.kafka.close()
            quiet.uninstall()
            quiet_driver.uninstall()
        if self.failure is not None:
            raise self.failure

    def fail(self, exc: BaseException) -> None:
        """Stop the agent because of ``exc`` (the first such error is what ``run`` raises)."""
        if self.failure is None:
            self.failure = exc
            log.error("%s: stopping: %s", self.role, exc)

    def _stopping(self) -> bool:
        return self.stop_event.is_set() or self.failure is not None

    def _build_consumer(self) -> Any:
        return KafkaClients(self.settings).consumer(
            f"fanout-{self.role}",
            group_id=self.group,
            group_instance_id=self.instance_id,
            enable_auto_commit=False,
            # every partition has a committed offset once settled (fanout.agents.offsets); the
            # reset only moves past records the topic's retention deleted meanwhile
            auto_offset_reset="earliest",
            # aiokafka keeps one fetch in flight per broker, held by the broker up to this long
            # while its partitions have no data: with the default 500 ms a partition resumed after
            # its batch waited out that long poll before its next records were fetched (at least
            # 10 ms: 0 would spin on empty fetches; at most aiokafka's default)
            fetch_max_wait_ms=min(max(self.fetch_wait_ms, 10), 500),
            session_timeout_ms=self.session_timeout_ms,
            heartbeat_interval_ms=max(1000, self.session_timeout_ms // 3),
        )

    async def _start_consumer(self) -> None:
        self.consumer = self._build_consumer()
        self.consumer.subscribe(self.topics, listener=_Rebalance(self))
        await self.consumer.start()
        log.info("%s: consuming %s as group %s", self.role, ",".join(self.topics), self.group)

    async def _close(self) -> None:
        for name, client in (("consumer", self.consumer), ("producer", self.producer)):
            if client is None:
                continue
            try:
                await asyncio.wait_for(client.stop(), timeout=2)
            except (TimeoutError, KafkaError, OSError) as exc:
                log.warning("%s: closing the %s failed: %s", self.role, name, exc)
        self.consumer = None
        log.info("%s: stopped after %d batches, %d records", self.role, self.batches, self.records)

    async def _probe(self) -> None:
        async with KafkaClients(self.settings).admin(f"fanout-{self.role}-probe") as admin:
            await admin.describe_cluster()

    # the loop ----------------------------------------------------------------------------
    async def _loop(self) -> None:
        failures = 0
        while not self._stopping():
            await self.partitions.commit_skipped()
            try:
                fetched = await self.consumer.getmany(timeout_ms=self.fetch_wait_ms, max_records=self.max_records)
            except KafkaError as exc:
                failures += 1
                await self._fetch_failed(exc, failures)
                if failures >= CONSUMER_FAILURES_BEFORE_RENEWAL:
                    failures = 0
                    await self._renew_consumer(exc)
                continue
            failures = 0
            if self._stopping():
                break
            assigned = self.consumer.assignment()
            oldest: int | None = None
            for tp, records in fetched.items():
                if not records or tp not in assigned:
                    continue
                if self.partitions.busy(tp):  # paused while in flight: never expected; re-fetch it later
                    self.consumer.seek(tp, records[0].offset)
                    continue
                self.partitions.start(tp, records)
                stamp = records[0].timestamp
                if stamp is not None and stamp >= 0:
                    oldest = stamp if oldest is None else min(oldest, stamp)
            if oldest is not None:
                metrics.BACKLOG_AGE.labels(self.role).set(max(0.0, time.time() - oldest / 1000))
            elif not self.partitions.work:
                metrics.BACKLOG_AGE.labels(self.role).set(0)

    async def _fetch_failed(self, exc: KafkaError, failures: int) -> None:
        self.kafka.trouble(f"fetching failed: {exc!r}")
        if failures == 1 and not self.kafka.is_down:
            log.warning("%s: fetching failed: %r", self.role, exc)
        await self.sleep(min(FIRST_BACKOFF_S * 2**failures, MAX_BACKOFF_S))

    async def _renew_consumer(self, why: BaseException) -> None:
        """Replace a consumer whose fetches keep failing: drain, leave the group, join again."""
        log.error("%s: the Kafka consumer keeps failing (%r): replacing it", self.role, why)
        await self.partitions.drain({*self.partitions.work, *self.partitions.committed}, self.grace_seconds)
        old, self.consumer = self.consumer, None
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await asyncio.wait_for(old.stop(), timeout=5)
        self.running.clear()
        self.consumer_renewals += 1
        metrics.CONSUMER_RENEWALS.labels(self.role).inc()
        while not self._stopping():
            try:
                await self._start_consumer()
                return
            except KafkaError as exc:
                self.consumer = None
                self.kafka.trouble(f"starting a consumer failed: {exc!r}")
                await self.sleep(MAX_BACKOFF_S)

    async def _watchdog(self) -> None:
        """Once a second: the health state; past the stall timeout, stop with ``Stalled``."""
        while True:
            await asyncio.sleep(1.0)
            try:
                self.health.update(pending=bool(self.partitions.work), failing=self.partitions.failing_names(),
                                   kafka_down_since=self.kafka.down_text())
            except Exception as exc:
                self.fail(exc)
                return

    async def sleep(self, seconds: float) -> None:
        """Sleep, or less when the agent is stopped."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stop_event.wait(), timeout=seconds)
