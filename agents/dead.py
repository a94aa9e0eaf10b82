"""The dead-letter topic: list dead letters with their reasons, and re-drive them once fixed.

    letters = await read_dead_letters(settings)                      # the whole topic, oldest first
    chosen = [d for d in letters if Filters(reasons={"version"}).matches(d)]
    result = await redrive(settings, chosen)                          # to their source topics

Re-driving sends a dead letter's original key and value, with its original record timestamp (so
an event without ``time`` derives the same activity id as the first time, and a replay decides
the same), to the topic it came from (activities, follows, or the chunk topics ``high``/``low``),
marked with the header ``fanout-redriven-from: <dead topic>:<partition>:<offset>``. Once the
broker acknowledged every re-sent record, a marker per dead letter is appended to the dead
topic (no value, header ``fanout-redriven-of: <partition>:<offset>``); a dead letter with a
marker is never re-driven again. A crash between the two re-drives those letters once more on
the next run: at least once, like the agents, and harmless for activities (same key, timestamp
and so id). A record that fails again becomes a new dead letter, which a later re-drive sends.

Why markers rather than one committed offset of a consumer group: re-drives are filtered (by
reason, agent, time), and an offset cannot remember that the ``version`` letters before it were
sent but the ``time`` letters were not; markers remember each letter. The dead topic is small
(30 days of rejects) and read whole on every run.

Not re-drivable: truncated letters (``fanout-truncated``: the record was too large to keep),
records without a value, and letters whose source is not a pipeline topic of these settings.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition

from fanout.kafka import Acks, KafkaClients
from fanout.settings import Settings

from .topics import check_topics, describe_topics

REDRIVEN_FROM = "fanout-redriven-from"
REDRIVEN_OF = "fanout-redriven-of"
_SOURCES = ("activities", "follows", "high", "low")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One record of the dead topic (not a marker)."""

    partition: int
    offset: int
    timestamp_ms: int  # when it was dead-lettered
    key: bytes | None
    value: bytes | None
    headers: dict[str, str]
    redriven: bool = False

    @property
    def reason(self) -> str:
        return self.headers.get("fanout-reason", "")

    @property
    def agent(self) -> str:
        return self.headers.get("fanout-agent", "")

    @property
    def source(self) -> str:
        h = self.headers
        return f"{h.get('fanout-source-topic', '?')}[{h.get('fanout-source-partition', '?')}]" \
               f"@{h.get('fanout-source-offset', '?')}"

    @property
    def truncated(self) -> bool:
        return self.headers.get("fanout-truncated") == "true"

    @property
    def source_timestamp_ms(self) -> int | None:
        try:
            value = int(self.headers.get("fanout-source-timestamp", ""))
        except ValueError:
            return None
        return value if value >= 0 else None

    def why_not_redrivable(self, settings: Settings) -> str:
        """Empty when the letter can be re-driven, else why not."""
        if self.truncated:
            return "truncated"
        if self.value is None:
            return "no value"
        if self.headers.get("fanout-source-topic") not in {settings.topic(name) for name in _SOURCES}:
            return "unknown source topic"
        return ""


@dataclass(frozen=True, slots=True)
class Filters:
    """Which dead letters a command is about (empty sets: any)."""

    reasons: frozenset[str] = frozenset()
    agents: frozenset[str] = frozenset()
    since_ms: int | None = None
    until_ms: int | None = None

    def matches(self, letter: DeadLetter) -> bool:
        return ((not self.reasons or letter.reason in self.reasons)
                and (not self.agents or letter.agent in self.agents)
                and (self.since_ms is None or letter.timestamp_ms >= self.since_ms)
                and (self.until_ms is None or letter.timestamp_ms < self.until_ms))


@dataclass(slots=True)
class RedriveResult:
    redriven: int = 0
    already: int = 0  # re-driven by an earlier run
    skipped: dict[str, int] = field(default_factory=dict)  # why not re-drivable -> count


async def read_dead_letters(settings: Settings, *, within: float = 60.0) -> list[DeadLetter]:
    """Every dead letter of the topic, oldest first, ``redriven`` set from the markers."""
    await check_topics(settings, ("dead",))
    topic = settings.topic("dead")
    count = (await describe_topics(settings))[topic]
    consumer = KafkaClients(settings).consumer("fanout-dead", enable_auto_commit=False, group_id=None)
    try:
        await consumer.start()
        partitions = [TopicPartition(topic, p) for p in range(count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + within
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            if time.monotonic() > deadline:
                raise TimeoutError(f"reading {topic} took over {within}s")
            for tp, batch in (await consumer.getmany(*partitions, timeout_ms=500)).items():
                records.extend(r for r in batch if r.offset < ends[tp])
    finally:
        await consumer.stop()
    return dead_letters_of(records)


def dead_letters_of(records: Iterable[Any]) -> list[DeadLetter]:
    """The dead letters among the dead topic's records, oldest first, re-driven ones marked."""
    marked: set[tuple[int, int]] = set()
    letters: list[DeadLetter] = []
    for record in records:
        headers = {name: value.decode(errors="replace") for name, value in record.headers or ()}
        if REDRIVEN_OF in headers:
            partition, _, offset = headers[REDRIVEN_OF].partition(":")
            marked.add((int(partition), int(offset)))
            continue
        letters.append(DeadLetter(record.partition, record.offset, record.timestamp, record.key, record.value,
                                  headers))
    letters = [DeadLetter(d.partition, d.offset, d.timestamp_ms, d.key, d.value, d.headers,
                          redriven=(d.partition, d.offset) in marked) for d in letters]
    letters.sort(key=lambda d: (d.timestamp_ms, d.partition, d.offset))
    return letters


async def redrive(settings: Settings, letters: Iterable[DeadLetter], *, dry_run: bool = False) -> RedriveResult:
    """Re-send each given dead letter not yet re-driven to its source topic (see the module doc)."""
    result = RedriveResult()
    todo: list[DeadLetter] = []
    for letter in letters:
        why = "" if not letter.redriven else "already"
        why = why or letter.why_not_redrivable(settings)
        if why == "already":
            result.already += 1
        elif why:
            result.skipped[why] = result.skipped.get(why, 0) + 1
        else:
            todo.append(letter)
    if dry_run or not todo:
        result.redriven = len(todo)
        return result
    dead_topic = settings.topic("dead")
    producer = KafkaClients(settings).producer("fanout-redrive")
    try:
        await producer.start()
        sent = Acks()
        for letter in todo:
            origin = f"{dead_topic}:{letter.partition}:{letter.offset}".encode()
            sent.add(await producer.send(
                letter.headers["fanout-source-topic"], value=letter.value, key=letter.key,
                timestamp_ms=letter.source_timestamp_ms, headers=[(REDRIVEN_FROM, origin)]))
        await sent.flush()  # every re-sent record acknowledged before any marker
        markers = Acks()
        for letter in todo:
            of = f"{letter.partition}:{letter.offset}".encode()
            markers.add(await producer.send(dead_topic, value=None, key=b"fanout-redriven",
                                            partition=letter.partition, headers=[(REDRIVEN_OF, of)]))
        await markers.flush()
    finally:
        await producer.stop()
    result.redriven = len(todo)
    return result
