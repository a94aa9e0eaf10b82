"""An agent's partitions in flight: one in-order task per partition, committed on its own.

``start(tp, records)`` pauses the partition (no more of its records are fetched while these are in
flight) and runs ``agent.process(records)`` in a task; once the store acknowledged the writes and
the broker what the records produced, the task commits ``{tp: last offset + 1}`` and resumes the
partition. A retriable failure seeks the partition back to the batch's first record and resumes
it after a backoff, so the records are re-fetched; nothing of theirs was committed. A
non-retriable one stops the agent (``agent.fail``).

The consumer also moves past records it never returns: the markers a transactional producer
writes when it commits or aborts, and the records of aborted transactions. ``commit_skipped``
commits the position of an idle partition that moved past such records only, so the group's lag
comes back to 0 (as a Java consumer's does) instead of staying at the records skipped.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from fanout.errors import FanoutError

from . import metrics
from .connectivity import KafkaConnectivity
from .deadletters import DeadLetters
from .health import Health
from .producing import AgentProducer, RetryBatch, TaskAcks

log = logging.getLogger("fanout.agents")

MAX_BACKOFF_S = 5.0
FIRST_BACKOFF_S = 0.1
REPEAT_LOG_EVERY_S = 60.0
SKIPPED_COMMIT_EVERY_S = 1.0  # how often ``commit_skipped`` looks (the agent's loop calls it each round)
SKIPPED_COMMIT_WAIT_S = 2.0  # how long it waits for a position or its commit


def retriable(exc: BaseException) -> bool:
    """A failure that re-delivering the partition's records later can cure."""
    if isinstance(exc, RetryBatch):
        return True
    return isinstance(exc, (FanoutError, KafkaError)) and bool(exc.retriable)


def tps_text(tps: Any) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps)) or "none"


@dataclass
class _Work:
    """One partition's batch in flight: processing it, or waiting to re-fetch it."""

    task: asyncio.Task[None]
    first: int  # offset of the batch's first record
    phase: str = "processing"  # or "backoff"


@dataclass
class _Failing:
    """A partition whose batches keep failing (for its log lines and the health state)."""

    since: float
    count: int = 0
    logged: float = -REPEAT_LOG_EVERY_S
    last_error: str = ""


class Owner(Protocol):
    """What the partition tasks use of their agent (``fanout.agents.base.Agent``)."""

    role: str
    consumer: Any
    producer: AgentProducer
    acks: TaskAcks
    kafka: KafkaConnectivity
    health: Health

    @property
    def dead(self) -> DeadLetters: ...

    def begin_task(self) -> None: ...

    def end_task(self) -> None: ...

    async def process(self, records: list[Any]) -> None: ...

    def fail(self, exc: BaseException) -> None: ...

    async def sleep(self, seconds: float) -> None: ...


class Partitions:
    """The batches in flight of one agent, by partition."""

    def __init__(self, agent: Owner) -> None:
        self.agent = agent
        self.work: dict[TopicPartition, _Work] = {}
        self.failing: dict[TopicPartition, _Failing] = {}
        self.committed: dict[TopicPartition, int] = {}  # the group's offset of each assigned partition
        self._skipped_at = time.monotonic()  # when ``commit_skipped`` last looked
        self.batches = 0
        self.records = 0

    def busy(self, tp: TopicPartition) -> bool:
        return tp in self.work

    def failing_names(self) -> list[str]:
        return [tps_text([tp]) for tp in self.failing]

    def start(self, tp: TopicPartition, records: list[Any]) -> None:
        self.agent.consumer.pause(tp)
        task = asyncio.ensure_future(self._run(tp, records))
        self.work[tp] = _Work(task, records[0].offset)

    async def _run(self, tp: TopicPartition, records: list[Any]) -> None:
        """One partition's batch: process, wait for the broker, commit; or seek back and retry."""
        agent = self.agent
        agent.begin_task()
        started = time.monotonic()
        try:
            await agent.process(records)
            await agent.producer.acknowledged(agent.acks, agent.dead.acks)
            agent.kafka.reachable()
            await self._commit(tp, records[-1].offset + 1)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if not retriable(exc):
                self.work.pop(tp, None)
                self.committed.pop(tp, None)  # its position is past the failed batch: never committed
                agent.fail(exc)
                return
            await self._retry_later(tp, records[0].offset, exc)
            return
        finally:
            agent.end_task()
        self.work.pop(tp, None)
        self._recovered(tp)
        self.batches += 1
        self.records += len(records)
        metrics.BATCH_SECONDS.labels(agent.role).observe(time.monotonic() - started)
        self._resume(tp)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        agent = self.agent
        try:
            await agent.consumer.commit({tp: offset})
        except (CommitFailedError, IllegalStateError) as exc:
            # The group rebalanced: the new owner re-delivers these records (idempotent writes).
            log.warning("%s: commit of %s failed (rebalance), its records will be re-delivered: %s",
                        agent.role, tps_text([tp]), exc)
            return
        except KafkaError as exc:
            agent.kafka.trouble(f"commit failed: {exc!r}")
            raise RetryBatch(f"commit failed: {exc!r}") from exc
        if tp in self.committed:  # still assigned (``drain`` forgets the partitions leaving)
            self.committed[tp] = offset
        metrics.COMMITS.labels(agent.role).inc()
        agent.health.progress()

    async def commit_skipped(self) -> None:
        """Commit the position of each idle partition that the consumer moved past records it
        never returned (transaction markers, aborted transactions; see the module doc).

        Idle: no batch in flight or waiting to be re-fetched, so every record below the position
        was processed and committed, or skipped. Only the agent's loop starts batches, and it is the
        caller: none starts while this runs; one that fails for good meanwhile is forgotten (``_run``)
        and each partition is looked at again after every wait. Each wait is bounded (aiokafka's
        commit retries until the coordinator answers): a look that fails or times out is left for
        the next one, once per ``SKIPPED_COMMIT_EVERY_S`` at most, and none while Kafka is down."""
        if time.monotonic() - self._skipped_at < SKIPPED_COMMIT_EVERY_S or self.agent.kafka.is_down:
            return
        self._skipped_at = time.monotonic()
        consumer = self.agent.consumer
        moved: dict[TopicPartition, int] = {}
        for tp, offset in list(self.committed.items()):
            if not self._idle(tp, offset):
                continue
            high_water = consumer.highwater(tp)  # None before the partition's first fetch
            if high_water is None or high_water <= offset:
                continue  # nothing beyond the committed offset: no position to read
            try:
                position = await asyncio.wait_for(consumer.position(tp), SKIPPED_COMMIT_WAIT_S)
            except (KafkaError, TimeoutError):  # revoked meanwhile, or no valid position yet
                continue
            if position > offset:
                moved[tp] = position
        moved = {tp: position for tp, position in moved.items() if self._idle(tp, None)}
        if not moved:
            return
        try:
            await asyncio.wait_for(consumer.commit(moved), SKIPPED_COMMIT_WAIT_S)
        except (KafkaError, TimeoutError) as exc:  # a rebalance or an outage: the next look tries again
            log.debug("%s: committing the skipped records of %s failed: %r", self.agent.role, tps_text(moved), exc)
            return
        self.committed.update(moved)

    def _idle(self, tp: TopicPartition, offset: int | None) -> bool:
        """No batch of ``tp`` in flight or failing, still assigned and (``offset`` given) still at it."""
        if tp in self.work or tp in self.failing or tp not in self.agent.consumer.assignment():
            return False
        return tp in self.committed and (offset is None or self.committed[tp] == offset)

    async def _retry_later(self, tp: TopicPartition, first: int, exc: BaseException) -> None:
        """Forget what the batch produced, seek its partition back, resume it after a backoff."""
        agent = self.agent
        agent.acks.discard()
        agent.dead.acks.discard()
        work = self.work.get(tp)
        if work is not None:
            work.phase = "backoff"
        failing = self.failing.setdefault(tp, _Failing(since=time.monotonic()))
        failing.count += 1
        failing.last_error = f"{exc}"[:300]
        delay = min(FIRST_BACKOFF_S * 2 ** (failing.count - 1), MAX_BACKOFF_S)
        metrics.PARTITION_RETRIES.labels(agent.role).inc()
        if isinstance(exc, KafkaError | RetryBatch):
            agent.kafka.trouble(failing.last_error)
        now = time.monotonic()
        if not agent.kafka.is_down and now - failing.logged >= REPEAT_LOG_EVERY_S:
            failing.logged = now
            log.warning("%s: %s failed (%d time(s) in %.0f s), re-delivering it from offset %d in %.1f s: %s",
                        agent.role, tps_text([tp]), failing.count, now - failing.since, first, delay, exc)
        if tp in agent.consumer.assignment():
            agent.consumer.seek(tp, first)
        await agent.sleep(delay)
        self.work.pop(tp, None)
        self._resume(tp)

    def _recovered(self, tp: TopicPartition) -> None:
        failing = self.failing.pop(tp, None)
        if failing is not None:
            log.warning("%s: %s recovered after %d failure(s) in %.0f s", self.agent.role, tps_text([tp]),
                        failing.count, time.monotonic() - failing.since)

    def _resume(self, tp: TopicPartition) -> None:
        consumer = self.agent.consumer
        if consumer is not None and tp in consumer.assignment():
            consumer.resume(tp)

    async def drain(self, tps: set[TopicPartition], grace: float) -> None:
        """Let the tasks of ``tps`` finish within ``grace`` seconds, cancel the rest (uncommitted);
        a task waiting to re-fetch is cancelled at once (it holds nothing). Their committed
        offsets are forgotten (``on_assigned`` settles them again)."""
        for tp in tps:
            self.committed.pop(tp, None)  # a task finishing below records nothing
        works = {tp: w for tp, w in self.work.items() if tp in tps}
        if not works:
            return
        for work in works.values():
            if work.phase == "backoff":
                work.task.cancel()
        pending = {w.task for w in works.values() if not w.task.done()}
        if pending and grace > 0:
            _, pending = await asyncio.wait(pending, timeout=grace)
        if pending:
            log.warning("%s: abandoning the unfinished batches of %s (not committed)", self.agent.role,
                        tps_text([tp for tp, w in works.items() if w.task in pending]))
        for task in pending:
            task.cancel()
        await asyncio.gather(*(w.task for w in works.values()), return_exceptions=True)
        for tp in works:
            self.work.pop(tp, None)
            self.failing.pop(tp, None)
