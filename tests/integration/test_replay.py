"""``fanout replay`` and ``fanout rebuild`` on the real broker and the real Cassandra node.

Each test gets its own topics (unique prefix) and keyspace. Workloads are produced straight to
``activities`` and ``follows`` with a bare aiokafka producer; every event carries an explicit
``time`` and the record timestamp is that time, strictly increasing, so "production order",
"timestamp order" and the eager reference's order are one and the same.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from fanout.activity import Activity
from fanout.agents import group_id
from fanout.agents.rebuild import rebuild_users
from fanout.agents.replay import ReplayConflict, ReplayOptions, ReplaySummary, replay
from fanout.agents.topics import committed_offsets, create_topics, delete_topics, describe_topics
from fanout.agents.worker import build_agent
from fanout.cassandra import CassandraStore
from fanout.codec import decode_activity_event, decode_follow_event
from fanout.core import Fanout
from fanout.errors import InvalidEvent
from fanout.kafka import KafkaClients
from fanout.memory import MemoryStore
from fanout.settings import Settings
from fanout.store import Store

pytestmark = pytest.mark.integration

BOOTSTRAP = "127.0.0.1:9092"
Snapshot = dict[str, list[Activity]]


# workload ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    topic: str  # "activities" | "follows"
    key: str
    value: bytes
    ts_ms: int


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


class Workload:
    """A random but valid history: follows, unfollows, re-follows, adds (derived and explicit
    ids, targets, extras), removes, and a few records that break the contract.

    Authors (``a*``) publish, so they are active and become HIGH followers; lurkers (``l*``) never
    publish or read, so they stay LOW followers.
    """

    def __init__(self, seed: int, *, authors: int = 8, lurkers: int = 22, start_ms: int) -> None:
        self.rng = random.Random(seed)
        self.authors = [f"a{i}" for i in range(authors)]
        self.lurkers = [f"l{i}" for i in range(lurkers)]
        self.users = self.authors + self.lurkers
        self.edges: set[tuple[str, str]] = set()
        self.posted: dict[str, list[str]] = {}  # actor -> explicit ids still live
        self.events: list[Event] = []
        self.invalid = 0
        self.clock = start_ms
        self.n = 0

    def _tick(self) -> int:
        self.clock += self.rng.randint(3, 40)
        return self.clock

    def _emit(self, topic: str, key: str, payload: dict[str, Any] | bytes) -> None:
        value = payload if isinstance(payload, bytes) else msgspec.json.encode(payload)
        self.events.append(Event(topic, key, value, self.clock))

    def follow(self, follower: str, followee: str) -> None:
        ts = self._tick()
        self.edges.add((follower, followee))
        self._emit("follows", follower, {"follower": follower, "followee": followee, "time": _iso(ts)})

    def unfollow(self, follower: str, followee: str) -> None:
        ts = self._tick()
        self.edges.discard((follower, followee))
        self._emit("follows", follower,
                   {"follower": follower, "followee": followee, "op": "unfollow", "time": _iso(ts)})

    def add(self, actor: str) -> None:
        ts = self._tick()
        self.n += 1
        event: dict[str, Any] = {"actor": actor, "verb": self.rng.choice(["pin", "like", "post"]),
                                 "object": f"obj:{self.n}", "time": _iso(ts)}
        if self.rng.random() < 0.3:
            event["target"] = f"board:{self.rng.randint(1, 5)}"
        if self.rng.random() < 0.2:
            event["extra"] = {"n": self.n, "tags": ["x", "y"]}
        if self.rng.random() < 0.4:
            event["id"] = f"{actor}-{uuid.UUID(int=self.rng.getrandbits(128))}"
            self.posted.setdefault(actor, []).append(event["id"])
        self._emit("activities", actor, event)

    def remove(self, actor: str) -> None:
        ids = self.posted.get(actor)
        if not ids:
            return self.add(actor)
        ts = self._tick()
        activity_id = ids.pop(self.rng.randrange(len(ids)))
        self._emit("activities", actor, {"actor": actor, "verb": "remove", "object": activity_id,
                                         "id": activity_id, "op": "remove", "time": _iso(ts)})

    def garbage(self) -> None:
        self._tick()
        self.invalid += 1
        if self.rng.random() < 0.5:
            self._emit("activities", "x", b"{not json")
        else:
            self._emit("follows", "x", {"follower": "same", "followee": "same"})

    def graph(self, edges: int) -> Workload:
        while len(self.edges) < edges:
            follower = self.rng.choice(self.users)
            followee = self.rng.choice(self.authors)
            if follower != followee and (follower, followee) not in self.edges:
                self.follow(follower, followee)
        return self

    def mixed(self, events: int, *, unfollow_from: Sequence[str] | None = None,
              posters: Sequence[str] | None = None) -> Workload:
        """``events`` more events; unfollows only of ``unfollow_from``, posts only by ``posters``."""
        posters = list(posters or self.authors)
        for _ in range(events):
            r = self.rng.random()
            if r < 0.55:
                self.add(self.rng.choice(posters))
            elif r < 0.65:
                self.remove(self.rng.choice(posters))
            elif r < 0.80:
                follower, followee = self.rng.choice(self.users), self.rng.choice(self.authors)
                if follower != followee and (follower, followee) not in self.edges:
                    self.follow(follower, followee)
            elif r < 0.97:
                candidates = sorted(e for e in self.edges if unfollow_from is None or e[1] in unfollow_from)
                if candidates:
                    self.unfollow(*self.rng.choice(candidates))
            else:
                self.garbage()
        return self

    def take(self) -> list[Event]:
        """The events emitted since the last ``take``."""
        out, self.events = self.events, []
        return out


async def produce(settings: Settings, events: Sequence[Event], *, pause: float = 0.0, slices: int = 1) -> None:
    """Produce with a bare aiokafka producer (key, value, record timestamp = event time)."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        step = max(1, len(events) // slices)
        for start in range(0, len(events), step):
            futures = [
                await producer.send(settings.topic(e.topic), value=e.value, key=e.key.encode(), timestamp_ms=e.ts_ms)
                for e in events[start : start + step]
            ]
            await asyncio.gather(*futures)
            if pause:
                await asyncio.sleep(pause)
    finally:
        await producer.stop()


async def eager(settings: Settings, events: Sequence[Event]) -> Snapshot:
    """The reference: Fanout + MemoryStore over the same events in the same order."""
    store = MemoryStore()
    fanout = Fanout(store, settings)
    for e in events:
        try:
            if e.topic == "activities":
                await fanout.handle_activity(decode_activity_event(e.value), accepted_ts=e.ts_ms * 1000)
            else:
                await fanout.handle_follow(decode_follow_event(e.value), accepted_ts=e.ts_ms * 1000)
        except InvalidEvent:
            pass
    return await snapshot(store)


async def snapshot(store: Store) -> Snapshot:
    feeds = await store.feed_ids()
    pages = await asyncio.gather(*(store.read(f, limit=100_000) for f in feeds))
    return dict(zip(feeds, pages, strict=True))


def diff(got: Snapshot, want: Snapshot) -> str:
    lines = [f"missing feed {f}" for f in sorted(set(want) - set(got))]
    lines += [f"extra feed {f}" for f in sorted(set(got) - set(want))]
    for f in sorted(set(got) & set(want)):
        g, w = [a.id for a in got[f]], [a.id for a in want[f]]
        if got[f] != want[f]:
            lines.append(f"{f}: extra {sorted(set(g) - set(w))} missing {sorted(set(w) - set(g))}"
                         + (" (order/content differs)" if set(g) == set(w) else ""))
    return "\n".join(lines[:20])


def assert_same(got: Snapshot, want: Snapshot) -> None:
    assert got == want, diff(got, want)


# fixtures -----------------------------------------------------------------------------------
def replay_settings(**changes: Any) -> Settings:
    tag = f"rp{uuid.uuid4().hex[:18]}"
    base: dict[str, Any] = dict(
        store="cassandra", kafka_bootstrap=BOOTSTRAP, topic_prefix=f"{tag}.",
        cassandra_keyspace=tag, cassandra_consistency="ONE", batch_max_wait_ms=20, batch_max_records=200,
        activities_partitions=3, follows_partitions=2, high_partitions=2, low_partitions=1, chunk_size=4,
    )
    base.update(changes)
    return Settings().replace(**base)


@pytest.fixture
async def env() -> AsyncIterator[tuple[Settings, CassandraStore]]:
    settings = replay_settings()
    await create_topics(settings)
    store = await CassandraStore.connect(settings)
    try:
        await store.migrate()
        yield settings, store
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()
            await delete_topics(settings)


async def run(settings: Settings, store: Store, *, stop: asyncio.Event | None = None, **options: Any) -> ReplaySummary:
    return await replay(settings, ReplayOptions(**options), store=store, stop=stop, progress=False)


# tests ---------------------------------------------------------------------------------------
async def test_replay_rebuilds_the_same_timelines_idempotently(env: tuple[Settings, CassandraStore]) -> None:
    settings, store = env
    w = Workload(1, start_ms=int(time.time() * 1000) - 3 * 3_600_000)
    w.graph(90).mixed(420)
    events = w.take()
    await produce(settings, events)

    # settle: the first replay is what applies the history to the empty store
    first = await run(settings, store)
    assert (first.events, first.invalid, first.resumed) == (len(events), w.invalid, False)
    assert first.chunks_high > 0 and first.chunks_low > 0  # HIGH (authors) and LOW (lurkers) followers
    assert first.activities + first.follows + first.invalid == len(events)
    settled = await snapshot(store)
    assert_same(settled, await eager(settings, events))
    assert any(f.startswith("timeline:") for f in settled) and any(f.startswith("user:") for f in settled)

    # a lost table: drop every timeline, replay from the beginning
    await store.drop_timelines()
    assert await store.feed_ids() == []
    again = await run(settings, store, reset=True)
    assert again.events == len(events) and again.rows > 0
    assert_same(await snapshot(store), settled)

    # replaying onto full timelines changes nothing (no duplicates); a finished replay run
    # again (no reset needed) starts over
    twice = await run(settings, store)
    assert not twice.resumed and twice.events == len(events)
    assert_same(await snapshot(store), settled)

    # `fanout rebuild USER` gives each user the timeline the full replay gave them
    users = ["l0", "l1", "a0", "a3", "nobody"]
    copied = await rebuild_users(settings, users, store=store)
    assert set(copied) == set(users)
    for user in users:
        feed = f"timeline:{user}"
        assert await store.read(feed, limit=100_000) == settled.get(feed, []), user


async def test_replay_resumes_and_targets_users_and_kinds(env: tuple[Settings, CassandraStore]) -> None:
    settings, store = env
    settings = settings.replace(batch_max_records=50)
    w = Workload(2, start_ms=int(time.time() * 1000) - 3 * 3_600_000)
    events = w.graph(80).mixed(300).take()
    await produce(settings, events)
    await run(settings, store)
    settled = await snapshot(store)

    # interrupt after a few batches (stop is honoured between batches), then resume
    await store.drop_timelines()
    stop = asyncio.Event()
    stopper = _StopAfter(store, stop, applies=40)
    part = await run(settings, stopper, reset=True, stop=stop)
    assert part.interrupted and 0 < part.events < len(events)
    with pytest.raises(ReplayConflict):  # another replay may not take over an unfinished one
        await run(settings, store, users=["l2", "a1"])
    rest = await run(settings, store, since=0)  # resumes: `since` only places a fresh replay
    assert rest.resumed and not rest.interrupted
    assert part.events + rest.events == len(events)  # each record exactly once: commits per batch
    assert_same(await snapshot(store), settled)

    # via Kafka: the chunks go to high/low and the writer agents apply them (onto full timelines:
    # nothing changes)
    via = await run(settings, store, via_kafka=True)
    assert via.published_rows > 0 and via.chunks_high + via.chunks_low > 0
    writers = [build_agent("writer", settings, store, priority=p) for p in ("high", "low")]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(a.run(stop)) for a in writers]
    try:
        await _wait_live_drained(settings, stop_if=tasks, roles=("high", "low"))
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(a.rows_written for a in writers) == via.published_rows  # type: ignore[attr-defined]
    assert_same(await snapshot(store), settled)

    # only some users: their timelines (and the authors' user feeds), nobody else's
    await store.drop_timelines()
    chosen = await run(settings, store, users=["l2", "a1", "l5"])  # the last replay finished
    assert chosen.skipped > 0
    got = await snapshot(store)
    want = {f: v for f, v in settled.items()
            if f.startswith("user:") or f in ("timeline:l2", "timeline:a1", "timeline:l5")}
    assert_same(got, want)

    # a new feed kind, built from history: the same entries as the timelines
    await run(settings, store, kind="news", reset=True)
    got = await snapshot(store)
    news = {f.replace("timeline:", "news:"): v for f, v in settled.items() if f.startswith("timeline:")}
    assert_same({f: v for f, v in got.items() if f.startswith("news:")}, news)


async def test_replay_while_live_traffic_flows(env: tuple[Settings, CassandraStore]) -> None:
    """The live agents (own groups) keep working while the replay runs and more events arrive;
    afterwards the timelines equal the eager result over all events."""
    settings, store = env
    w = Workload(3, start_ms=int(time.time() * 1000) - 3 * 3_600_000)
    history = w.graph(90).mixed(300).take()
    await produce(settings, history)
    await run(settings, store)
    assert_same(await snapshot(store), await eager(settings, history))

    # the live agents are up to date with the history (as if they had processed it)
    await _commit_at_end(settings)
    agents = [build_agent(role, settings, store, priority=prio)
              for role, prio in (("planner", None), ("follows", None), ("writer", "high"), ("writer", "low"))]
    stop = asyncio.Event()
    tasks = [asyncio.ensure_future(a.run(stop)) for a in agents]
    try:
        await asyncio.wait_for(asyncio.gather(*(a.running.wait() for a in agents)), 30)
        # Live traffic. The pipeline itself (not the replay) cannot order an unfollow against a
        # chunk of the followee that is already in flight, so live unfollows here are of authors
        # who do not post during this phase (see REPLAY.md, "Limits").
        w.clock += 3_600_000
        quiet, loud = w.authors[:3], w.authors[3:]
        live = w.mixed(260, unfollow_from=quiet, posters=loud).take()
        replaying = asyncio.ensure_future(run(settings, store, reset=True))
        await produce(settings, live, pause=0.05, slices=12)
        summary = await asyncio.wait_for(replaying, 90)
        assert summary.events >= len(history)
        await _wait_live_drained(settings, stop_if=tasks)
        print(f"replay: {summary.events} events ({summary.batches} batches), live agents: "
              f"{[(a.role, a.records) for a in agents]}")
        assert all(a.records > 0 for a in agents)  # the live pipeline worked meanwhile
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)
    for task in tasks:
        assert task.exception() is None
    assert_same(await snapshot(store), await eager(settings, history + live))


# helpers -----------------------------------------------------------------------------------
class _StopAfter:
    """A store that sets ``stop`` after ``applies`` timeline writes calls (everything else delegates)."""

    def __init__(self, inner: Store, stop: asyncio.Event, applies: int) -> None:
        self.inner, self.stop, self.left = inner, stop, applies

    async def apply(self, writes: Any) -> None:
        await self.inner.apply(writes)
        self.left -= 1
        if self.left <= 0:
            self.stop.set()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def _live_groups(settings: Settings) -> dict[str, list[str]]:
    p = settings.topic_prefix
    return {
        group_id(p, "planner"): ["activities"],
        group_id(p, "follows"): ["follows"],
        group_id(p, "writer", "high"): ["high"],
        group_id(p, "writer", "low"): ["low"],
    }


async def _end_offsets(settings: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    partitions = await describe_topics(settings)
    tps = [TopicPartition(settings.topic(t), p) for t in topics for p in range(partitions[settings.topic(t)])]
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        return dict(await consumer.end_offsets(tps))
    finally:
        await consumer.stop()


async def _commit_at_end(settings: Settings) -> None:
    """Commit every live group at the log end: they start 'up to date'."""
    for group, topics in _live_groups(settings).items():
        ends = await _end_offsets(settings, topics)
        consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, group_id=group,
                                    enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign(list(ends))
            await consumer.commit(ends)
        finally:
            await consumer.stop()


async def _lag(settings: Settings, roles: Sequence[str] | None = None) -> int:
    async with KafkaClients(settings).admin() as admin:
        total = 0
        for group, topics in _live_groups(settings).items():
            if roles is not None and topics[0] not in roles:
                continue
            ends = await _end_offsets(settings, topics)
            committed = await committed_offsets(admin, group, list(ends))
            for tp, end in ends.items():
                meta = committed.get(tp)
                total += end - max(meta.offset if meta is not None else 0, 0)
        return total


async def _wait_live_drained(settings: Settings, stop_if: Sequence[asyncio.Future[Any]], within: float = 60,
                             roles: Sequence[str] | None = None) -> None:
    deadline = time.monotonic() + within
    calm = 0
    while calm < 2:  # twice in a row: the planner may publish chunks right after writers look done
        for task in stop_if:
            if task.done():
                task.result()
                raise AssertionError("a live agent stopped")
        calm = calm + 1 if await _lag(settings, roles) == 0 else 0
        assert time.monotonic() < deadline, "live agents did not catch up"
        await asyncio.sleep(0.3)
