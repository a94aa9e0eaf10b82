"""Kafka from the outside, as another service would use it: a bare aiokafka producer, consumer lag
read with the admin client, and the dead-letter topic read back with its headers.

Nothing here uses fanout's own Kafka code: the suite must see what a producer and an operator see.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

BOOTSTRAP = "127.0.0.1:9092"
Value = bytes | None | Callable[[int], bytes]
#: The agents' consumer groups and the topic each consumes (agents/README.md).
GROUPS = {"planner": "activities", "follows": "follows", "writer-high": "high", "writer-low": "low"}


@dataclass(frozen=True, slots=True)
class Sent:
    """One record as produced: where it landed, or why the broker refused it."""

    topic: str  # the short name: activities, follows, high, low
    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    partition: int = -1
    offset: int = -1
    refused: str = ""  # the produce error, when the broker (or the client) refused the record

    @property
    def ts_us(self) -> int:
        return self.timestamp_ms * 1000


class Clock:
    """Record timestamps (ms) that strictly increase in production order."""

    def __init__(self) -> None:
        self.last = 0

    def next(self) -> int:
        self.last = max(int(time.time() * 1000), self.last + 1)
        return self.last


#: Records at least this large go through a producer of their own: when the broker refuses a record
#: (over its message size limit), aiokafka's idempotent producer fails every later record of that
#: partition with OutOfOrderSequenceNumber.
LARGE = 900_000


class Producer:
    """A bare aiokafka producer (acks=all, idempotent), as a service in another language would run;
    records over ``LARGE`` bytes are sent one at a time by a plain (not idempotent) one."""

    def __init__(self, prefix: str, *, max_request_size: int = 4 * 1024 * 1024) -> None:
        self.prefix = prefix
        self.clock = Clock()
        self.producer = AIOKafkaProducer(
            bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True,
            max_request_size=max_request_size, request_timeout_ms=30_000,
        )
        self.large = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, acks="all", max_request_size=max_request_size)

    async def __aenter__(self) -> Producer:
        await self.producer.start()
        await self.large.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.producer.stop()
        await self.large.stop()

    async def send_many(self, records: Iterable[tuple[str, bytes | None, Value]]) -> list[Sent]:
        """Produce (topic, key, value) records in order; wait for every acknowledgement. A value may be
        a function of the record's timestamp (ms), for events whose ``time`` is the record's."""
        pending: list[tuple[str, bytes | None, bytes | None, int, Any]] = []
        for topic, key, make in records:
            ts = self.clock.next()
            value = make(ts) if callable(make) else make
            client = self.large if value is not None and len(value) >= LARGE else self.producer
            try:
                future = await client.send(f"{self.prefix}{topic}", value=value, key=key, timestamp_ms=ts)
                if client is self.large:
                    await asyncio.wait([future])
            except KafkaError as exc:  # refused by the client before sending (e.g. over max_request_size)
                future = exc
            pending.append((topic, key, value, ts, future))
        out: list[Sent] = []
        for topic, key, value, ts, future in pending:
            if isinstance(future, Exception):
                out.append(Sent(topic, key, value, ts, refused=repr(future)))
                continue
            try:
                meta = await future
            except KafkaError as exc:
                out.append(Sent(topic, key, value, ts, refused=repr(exc)))
                continue
            out.append(Sent(topic, key, value, ts, meta.partition, meta.offset))
        return out

    async def send_docs(self, records: Iterable[tuple[str, str, Mapping[str, Any]]]) -> list[Sent]:
        """Produce (topic, key, JSON document) records."""
        return await self.send_many((t, k.encode(), json.dumps(d).encode()) for t, k, d in records)


# consumer lag ------------------------------------------------------------------------------------
async def lag(prefix: str, roles: Iterable[str] = GROUPS) -> dict[str, int]:
    """role -> records not yet committed by its group (log end offset - committed, summed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP, request_timeout_ms=15_000)
    consumer = AIOKafkaConsumer(bootstrap_servers=BOOTSTRAP, enable_auto_commit=False, request_timeout_ms=15_000)
    await admin.start()
    try:
        await consumer.start()
        roles = list(roles)
        topics = [f"{prefix}{GROUPS[role]}" for role in roles]
        partitions = {t["topic"]: len(t["partitions"]) for t in await admin.describe_topics(topics)}
        out: dict[str, int] = {}
        for role, topic in zip(roles, topics, strict=True):
            if not partitions.get(topic):
                raise KafkaError(f"topic {topic} has no partitions (yet)")
            tps = [TopicPartition(topic, p) for p in range(partitions[topic])]
            ends = await consumer.end_offsets(tps)
            committed = await admin.list_consumer_group_offsets(f"{prefix}{role}", partitions=tps)
            total = 0
            for tp in tps:
                meta = committed.get(tp)
                done = meta.offset if meta is not None and meta.offset >= 0 else 0
                total += max(0, ends[tp] - done)
            out[role] = total
        return out
    finally:
        await consumer.stop()
        await admin.close()


async def safe_lag(prefix: str, roles: Iterable[str] = GROUPS) -> dict[str, int] | None:
    """``lag``, or None while the broker does not answer."""
    try:
        return await asyncio.wait_for(lag(prefix, roles), 30)
    except (KafkaError, OSError, TimeoutError):
        return None


async def wait_drained(
    prefix: str, within: float, *, roles: Iterable[str] = GROUPS, alive: Callable[[], Awaitable[None]] | None = None,
    trace: Path | None = None,
) -> float:
    """Wait until every group has committed everything, twice in a row 1 s apart; return seconds taken.

    ``alive`` is awaited at each poll (e.g. to fail early when an agent crash-loops). On timeout the
    error names the lag left per group.
    """
    roles = list(roles)
    start = time.monotonic()
    streak = 0
    last: dict[str, int] | None = None
    while True:
        if alive is not None:
            await alive()
        last = await safe_lag(prefix, roles)
        if trace is not None:
            await asyncio.to_thread(_append, trace, f"{time.strftime('%H:%M:%S')} lag {last}\n")
        streak = streak + 1 if last is not None and not any(last.values()) else 0
        if streak >= 2:
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"not drained after {within:.0f}s: lag {last}")
        await asyncio.sleep(1.0)


def _append(path: Path, text: str) -> None:
    with open(path, "a") as f:
        f.write(text)


# dead letters ------------------------------------------------------------------------------------
@dataclass(slots=True)
class DeadLetter:
    value: bytes | None
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def source(self) -> tuple[str, int, int] | None:
        try:
            return (self.headers["fanout-source-topic"], int(self.headers["fanout-source-partition"]),
                    int(self.headers["fanout-source-offset"]))
        except (KeyError, ValueError):
            return None

    @property
    def reason(self) -> str:
        return self.headers.get("fanout-reason", "")

    @property
    def error(self) -> str:
        return self.headers.get("fanout-error", "")


async def read_dead(prefix: str, *, at_least: int, within: float, quiet: float = 3.0) -> list[DeadLetter]:
    """Read the dead-letter topic from its start until ``at_least`` letters arrived and then none for
    ``quiet`` seconds (or ``within`` seconds passed)."""
    consumer = AIOKafkaConsumer(
        f"{prefix}dead", bootstrap_servers=BOOTSTRAP, auto_offset_reset="earliest", enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024, fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    letters: list[DeadLetter] = []
    try:
        deadline = time.monotonic() + within
        last_new = time.monotonic()
        while time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=500)
            for records in fetched.values():
                for r in records:
                    headers = {k: v.decode("utf-8", "replace") for k, v in (r.headers or ())}
                    letters.append(DeadLetter(r.value, headers))
                    last_new = time.monotonic()
            if len(letters) >= at_least and time.monotonic() - last_new > quiet:
                break
        return letters
    finally:
        await consumer.stop()
