"""The replay's timestamp merge of several partitions (with a scripted consumer), and its CLI parsers."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest
from aiokafka import TopicPartition
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout.agents.replay_merge import Merger
from fanout.cli.replay import parse_offsets, parse_since
from fanout.errors import ConfigError

A, F = "p.activities", "p.follows"
RANKS = {F: 0, A: 1}


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int


class ScriptedConsumer:
    """Enough of AIOKafkaConsumer for ``Merger``: seek/pause/resume/position/getmany over fixed
    logs, handing out at most ``per_fetch`` records of each unpaused partition per call. A log
    may hold ``None`` (an offset without a record, like a control record)."""

    def __init__(self, logs: dict[TopicPartition, list[Record | None]], per_fetch: int = 3) -> None:
        self.logs = logs
        self.per_fetch = per_fetch
        self.pos: dict[TopicPartition, int] = {}
        self.paused: set[TopicPartition] = set()
        self.fetches = 0

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.pos[tp] = offset

    def pause(self, *tps: TopicPartition) -> None:
        self.paused.update(tps)

    def resume(self, *tps: TopicPartition) -> None:
        self.paused.difference_update(tps)

    async def position(self, tp: TopicPartition) -> int:
        return self.pos[tp]

    async def getmany(self, timeout_ms: int = 0) -> dict[TopicPartition, list[Record]]:
        self.fetches += 1
        assert self.fetches < 10_000, "the merger does not make progress"
        out: dict[TopicPartition, list[Record]] = {}
        for tp, log in self.logs.items():
            if tp in self.paused or tp not in self.pos:
                continue
            start = self.pos[tp]
            chunk = log[start : start + self.per_fetch]
            self.pos[tp] = start + len(chunk)
            records = [r for r in chunk if r is not None]
            if records:
                out[tp] = records
        return out


def make_logs(timestamps: dict[TopicPartition, list[int]]) -> dict[TopicPartition, list[Record | None]]:
    return {
        tp: [Record(tp.topic, tp.partition, off, ts) for off, ts in enumerate(stamps)]
        for tp, stamps in timestamps.items()
    }


async def drain(merger: Merger, batch: int) -> list[Any]:
    out: list[Any] = []
    while True:
        got = await merger.next_batch(batch)
        assert len(got) <= batch
        if not got:
            return out
        out.extend(got)


def key(r: Record) -> tuple[int, int, int, int]:
    return (r.timestamp, RANKS[r.topic], r.partition, r.offset)


def check_merge(logs: dict[TopicPartition, list[Record | None]], ranges: dict[TopicPartition, tuple[int, int]],
                merged: list[Record]) -> None:
    """Each partition's records in [start, end) exactly once, in offset order; and every record
    emitted is the smallest head among the partitions' next records at that moment."""
    heads = {tp: start for tp, (start, _) in ranges.items()}

    def next_record(tp: TopicPartition) -> Record | None:
        start, end = heads[tp], ranges[tp][1]
        while start < end and logs[tp][start] is None:
            start += 1
        heads[tp] = start
        return logs[tp][start] if start < end else None

    for record in merged:
        candidates = [r for r in (next_record(tp) for tp in logs) if r is not None]
        assert record == min(candidates, key=key)
        heads[TopicPartition(record.topic, record.partition)] = record.offset + 1
    assert all(next_record(tp) is None for tp in logs)


async def test_merges_topics_in_timestamp_order() -> None:
    a0, a1, f0 = TopicPartition(A, 0), TopicPartition(A, 1), TopicPartition(F, 0)
    logs = make_logs({a0: [1, 4, 9, 10], a1: [2, 3, 11], f0: [0, 4, 5, 12]})
    consumer = ScriptedConsumer(logs, per_fetch=2)
    merger = Merger(consumer, RANKS, fetch_ms=1)
    for tp, log in logs.items():
        merger.add(tp, 0, len(log))
    merged = await drain(merger, batch=3)
    assert [(r.timestamp, r.topic[2]) for r in merged] == [
        (0, "f"), (1, "a"), (2, "a"), (3, "a"), (4, "f"), (4, "a"), (5, "f"), (9, "a"), (10, "a"),
        (11, "a"), (12, "f"),
    ]  # on equal timestamps the follow comes first


async def test_keeps_partition_order_when_timestamps_go_back() -> None:
    a0, f0 = TopicPartition(A, 0), TopicPartition(F, 0)
    logs = make_logs({a0: [5, 1, 7], f0: [2, 6]})
    merger = Merger(ScriptedConsumer(logs), RANKS, fetch_ms=1)
    for tp, log in logs.items():
        merger.add(tp, 0, len(log))
    merged = await drain(merger, batch=10)
    assert [(r.topic[2], r.offset) for r in merged] == [("f", 0), ("a", 0), ("a", 1), ("f", 1), ("a", 2)]


async def test_reads_only_the_offset_ranges_and_catches_up() -> None:
    a0, f0 = TopicPartition(A, 0), TopicPartition(F, 0)
    logs = make_logs({a0: list(range(0, 20, 2)), f0: list(range(1, 20, 2))})
    merger = Merger(ScriptedConsumer(logs), RANKS, fetch_ms=1)
    merger.add(a0, 2, 5)
    merger.add(f0, 9, 9)  # empty range
    first = await drain(merger, batch=4)
    assert [(r.topic[2], r.offset) for r in first] == [("a", 2), ("a", 3), ("a", 4)]
    merger.extend(a0, 7)
    merger.extend(f0, 10)
    more = await drain(merger, batch=4)
    assert [(r.topic[2], r.offset) for r in more] == [("a", 5), ("a", 6), ("f", 9)]


async def test_an_offset_gap_at_the_end_finishes_the_partition() -> None:
    a0, f0 = TopicPartition(A, 0), TopicPartition(F, 0)
    logs: dict[TopicPartition, list[Record | None]] = {
        a0: [Record(A, 0, 0, 1), None, None], f0: [Record(F, 0, 0, 2)],
    }
    merger = Merger(ScriptedConsumer(logs, per_fetch=1), RANKS, fetch_ms=1)
    merger.add(a0, 0, 3)
    merger.add(f0, 0, 1)
    merged = await drain(merger, batch=10)
    assert [(r.topic[2], r.offset) for r in merged] == [("a", 0), ("f", 0)]


partition_logs = st.lists(st.lists(st.integers(0, 30), max_size=25), min_size=1, max_size=5)


@settings(max_examples=60, deadline=None)
@given(activities=partition_logs, follows=partition_logs, batch=st.integers(1, 12),
       per_fetch=st.integers(1, 7), data=st.data())
async def test_merge_property(activities: list[list[int]], follows: list[list[int]], batch: int, per_fetch: int,
                              data: st.DataObject) -> None:
    stamps = {TopicPartition(A, p): ts for p, ts in enumerate(activities)}
    stamps.update({TopicPartition(F, p): ts for p, ts in enumerate(follows)})
    logs = make_logs(stamps)
    ranges: dict[TopicPartition, tuple[int, int]] = {}
    for tp, log in logs.items():
        start = data.draw(st.integers(0, len(log)))
        ranges[tp] = (start, data.draw(st.integers(start, len(log))))
    merger = Merger(ScriptedConsumer(logs, per_fetch=per_fetch), RANKS, fetch_ms=1)
    for tp, (start, end) in ranges.items():
        merger.add(tp, start, end)
    check_merge(logs, ranges, await drain(merger, batch))


def test_parse_offsets() -> None:
    assert parse_offsets("activities=100") == {"activities": 100}
    assert parse_offsets("activities:0=5, activities:2=7,follows=3") == {"activities": {0: 5, 2: 7}, "follows": 3}
    for bad in ("users=1", "activities", "activities:x=1", "activities=1,activities:0=2", "follows=-1"):
        with pytest.raises(ConfigError):
            parse_offsets(bad)


def test_parse_since() -> None:
    now = datetime(2025, 1, 2, tzinfo=UTC)
    day_ms = 86_400_000
    assert parse_since("1d", now=now) == int(now.timestamp() * 1000) - day_ms
    assert parse_since("90m", now=now) == int(now.timestamp() * 1000) - 90 * 60_000
    assert parse_since("2025-01-01T00:00:00Z") == int(now.timestamp() * 1000) - day_ms
    assert parse_since("2025-01-01") == int(now.timestamp() * 1000) - day_ms  # naive = UTC
    assert parse_since("1735689600000") == 1735689600000
    with pytest.raises(ConfigError):
        parse_since("yesterday")
