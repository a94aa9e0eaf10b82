"""What the replay tests share: a deterministic workload produced with a bare aiokafka producer, the
eager reference, snapshots of every feed and their diff, the settings and store fixture, and the
live pipeline's lag and drain helpers.

Every event carries an explicit ``time`` and the record timestamp is that time, strictly
increasing, so "production order", "timestamp order" and the eager reference's order are one and
the same.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from fanout.activity import Activity
from fanout.agents import group_id
from fanout.agents.replay import ReplayOptions, ReplaySummary, replay
from fanout.agents.topics import committed_offsets, describe_topics
from fanout.codec import decode_activity_event, decode_follow_event
from fanout.core import Fanout
from fanout.errors import InvalidEvent
from fanout.kafka import KafkaClients
from fanout.memory import MemoryStore
from fanout.settings import Settings
from fanout.store import Store

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


async def run(settings: Settings, store: Store, *, stop: asyncio.Event | None = None, **options: Any) -> ReplaySummary:
    return await replay(settings, ReplayOptions(**options), store=store, stop=stop, progress=False)


# helpers -----------------------------------------------------------------------------------
class StopAfter:
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


async def commit_at_end(settings: Settings) -> None:
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


async def wait_live_drained(settings: Settings, stop_if: Sequence[asyncio.Future[Any]], within: float = 60,
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
