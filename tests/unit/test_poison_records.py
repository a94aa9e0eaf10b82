"""Failures tied to one record become dead letters, never a stopped worker (no Kafka needed).

A fake producer stands in for Kafka; the agents' ``process`` runs on hand-made records. A store
that refuses one record (a non-retriable ``StoreError``, as Cassandra's InvalidRequest) while it
still answers reads gets that record dead-lettered with reason ``store``, the rest written; a
store that refuses everything still stops the worker (nothing is dead-lettered for it). A dead
letter that does not fit in a Kafka message is sent truncated.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from typing import Any, NamedTuple

import pytest
from aiokafka.errors import MessageSizeTooLargeError

from fanout import MemoryStore, Settings, StoreError
from fanout.activity import Activity, now_micros
from fanout.agents.deadletters import MAX_DEAD_LETTER_BYTES, TRUNCATED_VALUE_BYTES, DeadLetters
from fanout.agents.planner import PlannerAgent
from fanout.agents.writer import WriterAgent
from fanout.codec import ChunkMessage, encode
from fanout.errors import InvalidEvent
from fanout.store import TimelineWrite


class Record(NamedTuple):
    topic: str
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: tuple[()] = ()


class Producer:
    """Records what is sent; refuses messages over ``limit`` bytes like aiokafka's producer."""

    def __init__(self, limit: int = 1_048_576, broker_limit: int | None = None) -> None:
        self.limit = limit
        self.broker_limit = broker_limit
        self.sent: list[tuple[str, bytes | None, bytes | None, dict[str, bytes]]] = []

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   headers: Sequence[tuple[str, bytes]] = ()) -> asyncio.Future[Any]:
        size = len(value or b"") + len(key or b"") + sum(len(k) + len(v) for k, v in headers)
        if size > self.limit:
            raise MessageSizeTooLargeError(f"{size} bytes")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self.broker_limit is not None and size > self.broker_limit:
            future.set_exception(MessageSizeTooLargeError("refused by the broker"))
        else:
            self.sent.append((topic, key, value, dict(headers)))
            future.set_result(None)
        return future


class RefusingStore(MemoryStore):
    """Refuses (non-retriably) every write to a feed in ``refused``; ``everything`` refuses all."""

    def __init__(self, refused: set[str], everything: bool = False) -> None:
        super().__init__()
        self.refused = refused
        self.everything = everything

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        if self.everything or any(w.feed in self.refused for w in writes):
            raise StoreError("Cassandra write failed: InvalidRequest: refused (injected)", retriable=False)
        await super().apply(writes)

    async def put_activity(self, activity: Activity) -> None:
        if self.everything or activity.id in self.refused:
            raise StoreError("Cassandra write failed: InvalidRequest: refused (injected)", retriable=False)
        await super().put_activity(activity)

    async def read(self, feed: str, **kwargs: Any) -> list[Activity]:
        if self.everything:
            raise StoreError("Cassandra read failed: InvalidRequest: unconfigured table (injected)", retriable=False)
        return await super().read(feed, **kwargs)


def _chunk(offset: int, feed: str) -> Record:
    ts = now_micros()
    chunk = ChunkMessage(op="add", priority="high", feeds=[feed], write_ts=ts,
                         activity=Activity(id=f"a{offset}", actor="ann", verb="pin", object="o", ts=ts))
    return Record("t.high", 0, offset, ts // 1000, feed.encode(), encode(chunk))


def _writer(store: MemoryStore, producer: Producer) -> WriterAgent:
    settings = Settings()
    agent = WriterAgent(settings, store, "high")
    agent.dead = DeadLetters(producer, settings, agent.role)
    return agent


async def test_the_writer_dead_letters_the_chunk_the_store_refuses_and_writes_the_rest() -> None:
    store, producer = RefusingStore({"timeline:poison"}), Producer()
    writer = _writer(store, producer)
    records = [_chunk(0, "timeline:f1"), _chunk(1, "timeline:poison"), _chunk(2, "timeline:f2")]
    await writer.process(records)
    assert [a.id for a in await store.read("timeline:f1", limit=10)] == ["a0"]
    assert [a.id for a in await store.read("timeline:f2", limit=10)] == ["a2"]
    assert len(producer.sent) == 1
    topic, key, value, headers = producer.sent[0]
    assert (topic, key, value) == (Settings().topic("dead"), b"timeline:poison", records[1].value)
    assert headers["fanout-reason"] == b"store"
    assert b"InvalidRequest" in headers["fanout-error"]


async def test_a_store_that_refuses_everything_still_stops_the_writer() -> None:
    store, producer = RefusingStore(set(), everything=True), Producer()
    writer = _writer(store, producer)
    with pytest.raises(StoreError, match="injected"):
        await writer.process([_chunk(0, "timeline:f1"), _chunk(1, "timeline:f2")])
    assert producer.sent == []


async def test_the_planner_dead_letters_an_event_the_store_refuses() -> None:
    store, producer = RefusingStore({"refused-1"}), Producer()
    settings = Settings()
    planner = PlannerAgent(settings, store)
    planner.producer = producer  # type: ignore[assignment]  # a fake: records what is sent
    planner.dead = DeadLetters(producer, settings, planner.role)
    await planner.on_started()
    now_ms = now_micros() // 1000
    events = [{"actor": "ann", "verb": "pin", "object": "o", "id": i} for i in ("ok-1", "refused-1", "ok-2")]
    records = [Record("t.activities", 0, n, now_ms, b"ann", json.dumps(e).encode()) for n, e in enumerate(events)]
    await planner.process(records)
    assert [a.id for a in await store.read("user:ann", limit=10)] == ["ok-2", "ok-1"]
    assert [(s[2], s[3]["fanout-reason"]) for s in producer.sent] == [(records[1].value, b"store")]


def _dead_record(size: int, key: bytes = b"k") -> Record:
    return Record("t.activities", 3, 7, 1_700_000_000_000, key, b"x" * size)


@pytest.mark.parametrize("size", [MAX_DEAD_LETTER_BYTES, 1_048_500])
async def test_a_dead_letter_that_would_not_fit_is_truncated_with_its_size(size: int) -> None:
    producer = Producer()
    dead = DeadLetters(producer, Settings(), "planner")
    await dead.send(_dead_record(size, key=b"k" * 5000), InvalidEvent("too big", reason="oversize"))
    await dead.acks.flush()
    [(_, key, value, headers)] = producer.sent
    assert value == b"x" * TRUNCATED_VALUE_BYTES
    assert key is not None and len(key) == 1024
    assert headers["fanout-truncated"] == b"true"
    assert headers["fanout-original-size"] == str(size).encode()
    assert headers["fanout-original-key-size"] == b"5000"
    assert headers["fanout-reason"] == b"oversize"


@pytest.mark.parametrize("producer", [Producer(limit=100_000), Producer(broker_limit=100_000)],
                         ids=["producer limit", "broker limit"])
async def test_a_dead_letter_the_producer_or_broker_refuses_is_sent_again_truncated(producer: Producer) -> None:
    dead = DeadLetters(producer, Settings(), "planner")
    await dead.send(_dead_record(200_000), InvalidEvent("bad", reason="json"))
    await dead.send(_dead_record(100), InvalidEvent("bad", reason="json"))
    await dead.acks.flush()
    sent = sorted((len(v or b""), h.get("fanout-truncated"), h["fanout-reason"]) for _, _, v, h in producer.sent)
    assert sent == [(100, None, b"json"), (TRUNCATED_VALUE_BYTES, b"true", b"json")]


async def test_a_flood_of_bad_records_logs_a_line_per_reason_every_ten_seconds(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """300 bad records printed 300 warnings; every one is still dead-lettered and counted."""
    from fanout.agents.deadletters import LOG_EVERY_S, DeadLetterLog

    clock = [1000.0]
    producer = Producer()
    lines = DeadLetterLog(clock=lambda: clock[0])  # the agent's: shared by each partition task's letters
    caplog.set_level(logging.WARNING, logger="fanout.agents")
    sent = 0
    for task in range(30):  # a batch of 20 bad records each (each task has its own DeadLetters)
        dead = DeadLetters(producer, Settings(), "planner", lines)
        for n in range(10):
            await dead.send(_dead_record(10), InvalidEvent(f"bad {task}.{n}", reason="schema"))
            await dead.send(_dead_record(10), InvalidEvent(f"late {task}.{n}", reason="time"))
        await dead.acks.flush()
        sent += dead.count
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 2 and "bad 0.0" in logged[0] and "late 0.0" in logged[1], logged
    clock[0] += LOG_EVERY_S
    dead = DeadLetters(producer, Settings(), "planner", lines)
    await dead.send(_dead_record(10), InvalidEvent("bad again", reason="schema"))
    assert "bad again (and 299 more with reason schema since its last line" in caplog.records[-1].getMessage()
    clock[0] += LOG_EVERY_S
    await dead.send(_dead_record(10), InvalidEvent("bad once more", reason="schema"))
    assert caplog.records[-1].getMessage().endswith("bad once more")  # none in between: no count
    await dead.acks.flush()
    assert len(producer.sent) == 602 and sent + dead.count == 602
