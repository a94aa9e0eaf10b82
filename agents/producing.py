"""What an agent produces (chunks, dead letters) and how it waits for the broker to take it.

``TaskAcks``: each partition task owes the broker acknowledgements for what IT produced; it
flushes only those before it commits, never another partition's (which may still be in flight).

``AgentProducer``: the agent's idempotent producer, renewed when it is in a fatal state. aiokafka's
idempotent producer can lose its sender task for good (``OutOfOrderSequenceNumber`` after a broker
restart, ``ProducerFenced``, an unexpected error): every later ``send`` then waits forever, and a
planner would re-deliver its batch every few seconds without end. ``acknowledged`` races the
acknowledgements against the sender task, so a dead sender is seen at once; the handle then builds
a new producer (a new producer id), and the batch is re-delivered through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextvars import ContextVar
from typing import Any

from aiokafka.errors import KafkaError

from fanout.kafka import Acks, KafkaClients
from fanout.settings import Settings

log = logging.getLogger("fanout.agents")

#: How long the broker may take to acknowledge a batch's records before the batch is retried:
#: aiokafka fails a record after ``request_timeout_ms`` (40 s), this is only the backstop.
ACK_TIMEOUT_S = 45.0


class RetryBatch(Exception):
    """The partition's records must be re-delivered (seek back) after a backoff; retriable."""

    retriable = True


class TaskAcks(Acks):
    """The acknowledgements owed by the current partition task (one ``Acks`` per task context).

    The task calls ``begin()`` first; every ``add`` in that task (and in tasks it starts) lands in
    its own ``Acks``, so ``flush`` waits for this partition's records only.
    """

    def __init__(self) -> None:
        super().__init__()
        self._current: ContextVar[Acks] = ContextVar("fanout_task_acks")

    def begin(self) -> None:
        self._current.set(Acks())

    def _mine(self) -> Acks:
        try:
            return self._current.get()
        except LookupError:
            raise RuntimeError("records produced outside a partition task (TaskAcks.begin not called)") from None

    def add(self, future: asyncio.Future[Any]) -> None:
        self._mine().add(future)

    async def flush(self) -> None:
        await self._mine().flush()

    def discard(self) -> None:
        self._mine().discard()


async def _flush_all(acks: tuple[Acks, ...]) -> None:
    for pending in acks:
        await pending.flush()


def sender_failure(producer: Any) -> BaseException | None:
    """The error that killed an aiokafka producer's sender task, or None while it runs.

    aiokafka exposes no public state for this; ``producer._sender.sender_task`` is read defensively
    (tests/integration/test_agent_health.py fails if aiokafka renames it).
    """
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    if task is None or not task.done():
        return None
    if task.cancelled():
        return asyncio.CancelledError("the producer's sender task was cancelled")
    error: BaseException | None = task.exception()
    return error or KafkaError("the producer's sender task ended")


def _sender_task(producer: Any) -> asyncio.Task[Any] | None:
    task = getattr(getattr(producer, "_sender", None), "sender_task", None)
    return task if isinstance(task, asyncio.Task) else None


class AgentProducer:
    """The agent's producer (``acks=all``, idempotent, 256 KiB batches), renewed when fatal."""

    def __init__(self, settings: Settings, client_id: str, role: str) -> None:
        self.settings = settings
        self.client_id = client_id
        self.role = role
        self.kafka: Any = None
        self.renewals = 0
        self._lock = asyncio.Lock()

    def _build(self) -> Any:
        return KafkaClients(self.settings).producer(self.client_id, max_batch_size=256 * 1024)

    async def start(self) -> None:
        self.kafka = self._build()
        await self.kafka.start()

    async def stop(self) -> None:
        if self.kafka is not None:
            kafka, self.kafka = self.kafka, None
            await asyncio.wait_for(kafka.stop(), timeout=2)

    async def send(
        self, topic: str, value: bytes | None = None, key: bytes | None = None, headers: Any = None
    ) -> asyncio.Future[Any]:
        """``producer.send``, on a new producer if the current one is in a fatal state."""
        failure = sender_failure(self.kafka)
        if failure is not None:
            await self.renew(self.kafka, failure)
        future: asyncio.Future[Any] = await self.kafka.send(topic, value=value, key=key, headers=headers)
        return future

    async def acknowledged(self, *acks: Acks, within: float = ACK_TIMEOUT_S) -> None:
        """Wait until the broker acknowledged every record in ``acks``; else ``RetryBatch``
        (the records are forgotten: the batch that produced them is re-delivered)."""
        kafka = self.kafka
        flush = asyncio.ensure_future(_flush_all(acks))
        sender = _sender_task(kafka)
        waiters: set[asyncio.Future[Any]] = {flush} if sender is None else {flush, sender}
        try:
            await asyncio.wait(waiters, timeout=within, return_when=asyncio.FIRST_COMPLETED)
            if flush.done():
                flush.result()  # raises the first failed record's error
                return
            failure = sender_failure(kafka)
            if failure is None:
                raise RetryBatch(f"the broker did not acknowledge the records within {within:.0f}s")
            await self.renew(kafka, failure)
            raise RetryBatch(f"the producer failed: {failure!r}") from failure
        except KafkaError as exc:
            failure = sender_failure(kafka)
            if failure is not None or not exc.retriable:
                await self.renew(kafka, failure or exc)
            raise RetryBatch(f"producing to Kafka failed: {exc!r}") from exc
        finally:
            for pending in acks:
                pending.discard()
            if not flush.done():
                flush.cancel()
                with contextlib.suppress(BaseException):
                    await flush

    async def renew(self, broken: Any, why: BaseException) -> None:
        """Replace ``broken`` (if it is still the current producer) with a new, started one."""
        async with self._lock:
            if broken is not self.kafka:
                return  # another task renewed it already
            log.error("%s: the Kafka producer is in a fatal state (%r): replacing it", self.role, why)
            fresh = self._build()
            await fresh.start()
            self.kafka = fresh
            self.renewals += 1
        with contextlib.suppress(KafkaError, OSError, TimeoutError):
            await asyncio.wait_for(broken.stop(), timeout=5)
