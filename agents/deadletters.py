"""Dead letters: records an agent cannot process go to the ``dead`` topic, with why and where
they came from in headers (agents/README.md lists them; ``fanout dead`` lists and re-drives them).

A dead letter carries the record's key and value as they were, unless the record with the
headers would not fit in a Kafka message (``MAX_DEAD_LETTER_BYTES``, below the producer's
``max_request_size`` and the broker's ``message.max.bytes``, both 1 MiB by default): then it
carries the first ``TRUNCATED_VALUE_BYTES`` of the value (and of a key over 1 KiB), with
``fanout-truncated: true`` and ``fanout-original-size``. The same happens when the producer or
the broker refuses a dead letter as too large. So a poison record never becomes a crash loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any, NamedTuple

from aiokafka.errors import MessageSizeTooLargeError, RecordListTooLargeError

from fanout.errors import InvalidEvent
from fanout.kafka import Acks
from fanout.settings import Settings

from . import metrics

log = logging.getLogger("fanout.agents")

ERROR_HEADER_LIMIT = 2000
LOG_EVERY_S = 10.0  # at most one log line per reason this often; the others are counted in the next
MAX_DEAD_LETTER_BYTES = 1_000_000
TRUNCATED_VALUE_BYTES = 64 * 1024
TRUNCATED_KEY_BYTES = 1024
_TOO_LARGE = (MessageSizeTooLargeError, RecordListTooLargeError)

Headers = list[tuple[str, bytes]]


class _Sent(NamedTuple):
    future: asyncio.Future[Any]
    record: Any
    headers: Headers
    truncated: bool


class DeadLetterAcks(Acks):
    """The broker acknowledgements of the dead letters sent so far: a dead letter the broker
    refuses as too large is sent again truncated before ``flush`` returns."""

    def __init__(self, letters: DeadLetters) -> None:
        super().__init__()
        self.letters = letters
        self._sent: list[_Sent] = []

    def track(self, sent: _Sent) -> None:
        self._sent.append(sent)

    async def flush(self) -> None:
        await super().flush()
        pending, self._sent = self._sent, []
        results = await asyncio.gather(*(s.future for s in pending), return_exceptions=True)
        again: list[_Sent] = []
        for sent, result in zip(pending, results, strict=True):
            if isinstance(result, _TOO_LARGE) and not sent.truncated:
                again.append(await self.letters.produce(sent.record, sent.headers, truncate=True))
            elif isinstance(result, BaseException):
                raise result
        if again:
            await asyncio.gather(*(s.future for s in again))

    def discard(self) -> None:
        super().discard()
        self._sent = []


class DeadLetterLog:
    """An agent's log lines about its dead letters: one line per reason every ``LOG_EVERY_S`` at
    most (a producer sending garbage would otherwise fill the log), naming how many came since
    the last one. One per agent, shared by the ``DeadLetters`` of all its partition tasks."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._logged: dict[str, float] = {}  # reason -> when its last line was printed
        self._unlogged: dict[str, int] = {}  # reason -> dead letters since without a line

    def line(self, role: str, record: Any, reason: str, error: InvalidEvent) -> None:
        now = self.clock()
        if now - self._logged.get(reason, -LOG_EVERY_S) < LOG_EVERY_S:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            return
        self._logged[reason] = now
        unlogged = self._unlogged.pop(reason, 0)
        more = f" (and {unlogged} more with reason {reason} since its last line: `fanout dead` lists them)"
        log.warning(
            "%s: dead-lettering %s[%d]@%d (%s): %s%s",
            role, record.topic, record.partition, record.offset, reason, error, more if unlogged else "",
        )


class DeadLetters:
    """Produces rejected records to the dead-letter topic, with why and where they came from."""

    def __init__(self, producer: Any, settings: Settings, role: str, lines: DeadLetterLog | None = None) -> None:
        self.producer = producer
        self.topic = settings.topic("dead")
        self.role = role
        self.acks = DeadLetterAcks(self)
        self.count = 0
        self.lines = lines or DeadLetterLog()

    async def send(self, record: Any, error: InvalidEvent) -> None:
        reason = error.reason
        headers: Headers = [
            ("fanout-reason", reason.encode()),
            ("fanout-error", str(error)[:ERROR_HEADER_LIMIT].encode()),
            ("fanout-source-topic", str(record.topic).encode()),
            ("fanout-source-partition", str(record.partition).encode()),
            ("fanout-source-offset", str(record.offset).encode()),
            ("fanout-source-timestamp", str(record.timestamp).encode()),
            ("fanout-agent", self.role.encode()),
        ]
        self.acks.track(await self.produce(record, headers, truncate=_size(record, headers) > MAX_DEAD_LETTER_BYTES))
        self.count += 1
        metrics.DEAD_LETTERS.labels(self.role, reason).inc()
        metrics.EVENTS.labels(self.role, "dead").inc()
        self.lines.line(self.role, record, reason, error)

    async def produce(self, record: Any, headers: Headers, *, truncate: bool) -> _Sent:
        """Send the dead letter (truncated if asked, or if the producer refuses it as too large)."""
        if not truncate:
            try:
                future = await self.producer.send(self.topic, value=record.value, key=record.key, headers=headers)
                return _Sent(future, record, headers, truncated=False)
            except _TOO_LARGE:
                pass
        value, key = record.value or b"", record.key
        marked = [*headers, ("fanout-truncated", b"true"), ("fanout-original-size", str(len(value)).encode())]
        if key is not None and len(key) > TRUNCATED_KEY_BYTES:
            key = key[:TRUNCATED_KEY_BYTES]
            marked.append(("fanout-original-key-size", str(len(record.key)).encode()))
        log.warning("%s: %s[%d]@%d is %d bytes: its dead letter keeps the first %d", self.role, record.topic,
                    record.partition, record.offset, len(value), TRUNCATED_VALUE_BYTES)
        future = await self.producer.send(self.topic, value=value[:TRUNCATED_VALUE_BYTES], key=key, headers=marked)
        return _Sent(future, record, headers, truncated=True)


def _size(record: Any, headers: Headers) -> int:
    """About the bytes of the dead letter in a record batch (with room for the batch overhead)."""
    return (len(record.value or b"") + len(record.key or b"") + 128
            + sum(len(name) + len(value) + 8 for name, value in headers))
