"""The follows agent applies a batch's followers concurrently, each follower's events in order (no Kafka).

``FollowsAgent.process`` runs on hand-made records against a memory store that yields to the event
loop before every call, so the followers' store calls really interleave. It must end in exactly
the state the records give applied one after another in partition order (the agent's behaviour
before it ran followers concurrently), dead-letter the same records, keep each follower's events
in order, hold at most ``follows_concurrency`` followers at once, and let a failure that is not a
record's propagate as it is, with nothing left running.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Awaitable, Collection, Sequence
from typing import Any, TypeVar

import pytest

from fanout import MemoryStore, Settings, StoreError
from fanout.activity import Activity, now_micros
from fanout.agents.deadletters import DeadLetters
from fanout.agents.follows import FollowsAgent, follower_lanes, keyed_by_follower
from fanout.codec import decode_follow_event
from fanout.core import Fanout
from fanout.errors import ConfigError, InvalidEvent
from fanout.store import Edge, TimelineWrite
from tests.contract.history import home_partition

from .test_poison_records import Producer, Record

SETTINGS = Settings(follow_activity_limit=5, max_length=6, trim_every=3, feed_kinds=("timeline", "aggregated"),
                    follows_partitions=3, agent_retry_attempts=1)
TOPIC = SETTINGS.topic("follows")
PARTITION = 1  # the batches' partition
AUTHORS = [f"a{n}" for n in range(5)]
T0_MS = now_micros() // 1000 - 3_600_000
T = TypeVar("T")


def followers_of(partition: int, count: int, *, home: bool) -> list[str]:
    """``count`` follower ids whose home partition is ``partition`` (``home``) or another one."""
    found: list[str] = []
    n = 0
    while len(found) < count:
        name = f"u{n}"
        if (home_partition(name, SETTINGS.follows_partitions) == partition) == home:
            found.append(name)
        n += 1
    return found


HOME = followers_of(PARTITION, 6, home=True)
ELSEWHERE = followers_of(PARTITION, 2, home=False)  # their records here are mis-keyed


def key_of(follower: str) -> str:
    """The key a record of ``follower`` is produced under here: a mis-keyed one's is another key."""
    return follower if follower in HOME else f"{follower}~other"


class YieldingStore(MemoryStore):
    """A memory store that yields to the event loop 0-2 times before every graph and feed call (as
    a network store would), and logs the calls as (follower, what) in the order they were made."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.calls: list[tuple[str, str]] = []

    async def _pause(self, who: str, what: str) -> None:
        self.calls.append((who, what))
        for _ in range(self.rng.randint(0, 2)):
            await asyncio.sleep(0)

    async def follow_edge(self, follower: str, followee: str) -> Edge | None:
        await self._pause(follower, f"edge {followee}")
        return await super().follow_edge(follower, followee)

    async def follow_edges(self, follower: str, followees: Collection[str] | None = None) -> dict[str, Edge]:
        await self._pause(follower, "edges")
        return await super().follow_edges(follower, followees)

    async def last_active(self, user: str) -> int:
        await self._pause(user, "last_active")
        return await super().last_active(user)

    async def set_follow(self, follower: str, followee: str, following: bool, at: int, active_until: int = 0, *,
                         source: int | None = None) -> None:
        await self._pause(follower, f"{'follow' if following else 'unfollow'} {followee} at {at}")
        await super().set_follow(follower, followee, following, at, active_until, source=source)

    async def read(self, feed: str, **kwargs: Any) -> list[Activity]:
        await self._pause(feed.partition(":")[2], f"read {feed}")
        return await super().read(feed, **kwargs)

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        await self._pause(writes[0].feed.partition(":")[2] if writes else "", "apply")
        await super().apply(writes)

    async def trim(self, feed: str, max_length: int) -> int:
        await self._pause(feed.partition(":")[2], f"trim {feed}")
        return await super().trim(feed, max_length)


async def seeded(store: MemoryStore, rng: random.Random) -> None:
    """Each author's own feed with 0-8 activities; some followers' feeds with some of them (as
    fanout adds), some followers active."""
    posts: list[Activity] = []
    for author in AUTHORS:
        for n in range(rng.randint(0, 8)):
            ts = (T0_MS - 1_000_000 + rng.randint(0, 999_999)) * 1000
            posts.append(Activity(id=f"{author}-{n}", actor=author, verb="pin", object=f"o{n}", ts=ts))
    await MemoryStore.apply(store, [TimelineWrite(f"user:{a.actor}", a, a.ts) for a in posts])
    for follower in HOME + ELSEWHERE:
        mine = rng.sample(posts, min(len(posts), rng.randint(0, 4)))
        await MemoryStore.apply(store, [TimelineWrite(f"timeline:{follower}", a, a.ts) for a in mine])
        if rng.random() < 0.5:
            await store.set_active(follower, active_until=T0_MS * 1000 + 10**12, at=T0_MS * 1000)


def record(offset: int, ts_ms: int, value: bytes | None, key: str = "k") -> Record:
    return Record(TOPIC, PARTITION, offset, ts_ms, key.encode(), value)


def follow_value(follower: str, followee: str, op: str, **extra: Any) -> bytes:
    return json.dumps({"follower": follower, "followee": followee, "op": op, **extra}).encode()


def random_batch(rng: random.Random, first_offset: int, size: int) -> list[Record]:
    """Follows and unfollows of a few edges, repeated (follow/unfollow/follow of one edge in a
    row among them), record timestamps that go back and forth, mis-keyed and broken records."""
    out: list[Record] = []
    while len(out) < size:
        offset = first_offset + len(out)
        ts = T0_MS + offset * 3 + rng.randint(-40, 40)
        follower = rng.choice(HOME + ELSEWHERE)
        followee = rng.choice(AUTHORS)
        roll = rng.random()
        if roll < 0.04:
            out.append(record(offset, ts, None))
        elif roll < 0.08:
            out.append(record(offset, ts, b'{"follower": "u0", "followee"'))
        elif roll < 0.10:
            out.append(record(offset, ts, follow_value(follower, followee, "follow", time="1990-01-01T00:00:00Z")))
        elif roll < 0.25:
            for n, op in enumerate(("follow", "unfollow", "follow")):
                out.append(record(offset + n, ts, follow_value(follower, followee, op), key=key_of(follower)))
        else:
            op = "follow" if rng.random() < 0.7 else "unfollow"
            out.append(record(offset, ts, follow_value(follower, followee, op), key=key_of(follower)))
    return out


async def sequential(store: MemoryStore, records: Sequence[Record]) -> list[tuple[int, str]]:
    """The reference: every record in partition order, one after the other; returns the dead
    letters as (offset, reason)."""
    fanout = Fanout(store, SETTINGS)
    dead: list[tuple[int, str]] = []
    for rec in records:
        try:
            if rec.value is None:
                raise InvalidEvent("no value", reason="json")
            event = decode_follow_event(rec.value)
            in_order = keyed_by_follower(rec, event.follower)
            await fanout.handle_follow(event, accepted_ts=rec.timestamp * 1000, in_order=in_order,
                                       partition=rec.partition)
        except InvalidEvent as exc:
            dead.append((rec.offset, exc.reason))
    return dead


def agent_on(store: MemoryStore, **changes: Any) -> tuple[FollowsAgent, Producer]:
    settings = SETTINGS.replace(**changes)
    agent, producer = FollowsAgent(settings, store), Producer()
    agent.dead = DeadLetters(producer, settings, agent.role)
    return agent, producer


def dead_letters(producer: Producer) -> list[tuple[int, str]]:
    """The dead letters sent, as (offset of the record, reason), by offset."""
    return sorted((int(h["fanout-source-offset"]), h["fanout-reason"].decode()) for _, _, _, h in producer.sent)


async def state(store: MemoryStore) -> dict[str, Any]:
    """Every feed's rows with their write timestamps (deletes included), every edge with the
    timestamp that decided it, every follower row with its active_until."""
    feeds = {feed: sorted((i, cell[0]) for i, cell in s.cells.items()) for feed, s in store._feeds.items()}
    edges = {f: await store.follow_edges(f) for f in HOME + ELSEWHERE}
    rows = {a: sorted([row async for page in store.followers(a, page_size=100) for row in page]) for a in AUTHORS}
    return {"feeds": feeds, "edges": edges, "followers": rows}


@pytest.mark.parametrize("seed", range(16))
async def test_the_concurrent_agent_ends_as_the_records_applied_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    concurrent, reference = YieldingStore(seed), MemoryStore()
    setup = random.Random(seed + 1000)
    await seeded(concurrent, setup)
    setup = random.Random(seed + 1000)
    await seeded(reference, setup)
    agent, producer = agent_on(concurrent, follows_concurrency=rng.choice([2, 4, 32]))
    records: list[Record] = []
    for _ in range(3):  # consecutive batches of the partition
        batch = random_batch(rng, len(records), rng.randint(10, 60))
        records += batch
        await agent.process(list(batch))
    runs = sum(what == "edges" for _, what in concurrent.calls)  # a run of follows reads its edges at once
    want_dead = await sequential(reference, records)
    assert dead_letters(producer) == sorted(want_dead)
    assert {reason for _, reason in want_dead} <= {"json", "time"} and want_dead
    got, want = await state(concurrent), await state(reference)
    assert got == want
    assert any(feed.startswith("timeline:") for feed in got["feeds"])
    assert runs > 0


async def test_a_followers_events_are_applied_in_order_while_followers_interleave() -> None:
    store = YieldingStore(7)
    await MemoryStore.apply(store, [TimelineWrite(f"user:{a}", Activity(id=f"{a}-p", actor=a, verb="pin", object="o",
                                                                         ts=T0_MS * 1000), T0_MS * 1000)
                                    for a in AUTHORS])
    agent, _ = agent_on(store, follows_concurrency=8)
    me, others = HOME[0], HOME[1:]
    mine = [("a1", "follow"), ("a1", "unfollow"), ("a1", "follow"), ("a2", "follow"), ("a2", "unfollow")]
    records: list[Record] = []
    for n, (followee, op) in enumerate(mine):
        # one millisecond for all, then a clock that goes back: only the partition order can decide
        records.append(record(len(records), T0_MS - 10 * n, follow_value(me, followee, op), key=me))
        other = others[n % len(others)]  # another follower's record in between
        records.append(record(len(records), T0_MS, follow_value(other, AUTHORS[n], "follow"), key=other))
    await agent.process(records)

    decided = [what for who, what in store.calls if who == me and what.startswith(("follow ", "unfollow "))]
    assert [" ".join(d.split()[:2]) for d in decided] == [f"{op} {followee}" for followee, op in mine]
    stamps = [int(d.split()[-1]) for d in decided]
    for edge in (stamps[:3], stamps[3:]):  # each edge's decisions in partition order, whatever the clock
        assert edge == sorted(edge) and len(set(edge)) == len(edge)
    edges = {"a1": Edge(True, stamps[2], PARTITION), "a2": Edge(False, stamps[4], PARTITION)}
    assert await store.follow_edges(me) == edges
    assert [a.id for a in await store.read(f"timeline:{me}", limit=10)] == ["a1-p"]
    # the followers really interleaved: others' calls come between my first call and my last
    mine_at = [i for i, (who, _) in enumerate(store.calls) if who == me]
    assert {who for who, _ in store.calls[mine_at[0]:mine_at[-1]]} - {me, "a1", "a2"}


@pytest.mark.parametrize("concurrency", [1, 3, 8])
async def test_at_most_follows_concurrency_followers_are_applied_at_once(concurrency: int) -> None:
    store = MemoryStore()
    agent, _ = agent_on(store, follows_concurrency=concurrency)
    inside: set[str] = set()
    most = 0
    handle, apply_follows = agent.fanout.handle_follow, agent.fanout.graph.apply_follows

    async def counted(follower: str, work: Awaitable[T]) -> T:
        nonlocal most
        assert follower not in inside  # one follower's events never overlap
        inside.add(follower)
        most = max(most, len(inside))
        for _ in range(3):
            await asyncio.sleep(0)
        try:
            return await work
        finally:
            inside.discard(follower)

    async def one(event: Any, accepted_ts: int | None = None, *, in_order: bool = True,
                  partition: int | None = None) -> int:
        return await counted(event.follower, handle(event, accepted_ts, in_order=in_order, partition=partition))

    async def run(follower: str, follows: Sequence[tuple[str, int, bool]], partition: int | None = None) -> list[int]:
        return await counted(follower, apply_follows(follower, follows, partition))

    agent.fanout.handle_follow = one  # type: ignore[method-assign]
    agent.fanout.graph.apply_follows = run  # type: ignore[method-assign]
    followers = [f"v{n}" for n in range(12)]
    # each follower: a run of three follows, then events applied one by one (an unfollow, a follow again)
    events = [("a0", "follow"), ("a1", "follow"), ("a2", "follow"), ("a0", "unfollow"), ("a1", "follow")]
    records = [record(n, T0_MS + n, follow_value(followers[n // 5], *events[n % 5]), key=followers[n // 5])
               for n in range(60)]
    await agent.process(records)
    assert most == concurrency
    assert [await store.following(f) for f in followers] == [["a1", "a2"]] * len(followers)


class FailingStore(MemoryStore):
    """``set_follow`` of ``broken`` fails retriably; ``stuck`` waits until cancelled
    (``sabotage``: subclasses call it from the store call they break)."""

    def __init__(self) -> None:
        super().__init__()
        self.stuck_cancelled = asyncio.Event()
        self.stuck_started = asyncio.Event()

    async def sabotage(self, who: str) -> None:
        if who == "stuck":
            self.stuck_started.set()
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.stuck_cancelled.set()
                raise
        if who == "broken":
            await self.stuck_started.wait()
            raise StoreError("Cassandra write failed: WriteTimeout (injected)", retriable=True)

    async def set_follow(self, follower: str, followee: str, following: bool, at: int, active_until: int = 0, *,
                         source: int | None = None) -> None:
        await self.sabotage(follower)
        await super().set_follow(follower, followee, following, at, active_until, source=source)


async def test_a_failure_not_tied_to_a_record_cancels_the_other_followers_and_propagates_as_it_is() -> None:
    store = FailingStore()
    agent, producer = agent_on(store, follows_concurrency=4)
    records = [record(n, T0_MS + n, follow_value(f, "a0", "follow"), key=f)
               for n, f in enumerate(["ok1", "stuck", "broken", "ok2", "ok3"])]
    async with asyncio.timeout(10):
        with pytest.raises(StoreError, match="injected") as raised:
            await agent.process(records)
    assert raised.value.retriable  # what the partition task asks: seek back and re-fetch
    assert store.stuck_cancelled.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running
    assert producer.sent == []


class RefusingStore(MemoryStore):
    """Refuses (non-retriably) the edges of follower ``poison`` while it answers reads."""

    async def set_follow(self, follower: str, followee: str, following: bool, at: int, active_until: int = 0, *,
                         source: int | None = None) -> None:
        if follower == "poison":
            raise StoreError("Cassandra write failed: InvalidRequest: refused (injected)", retriable=False)
        await super().set_follow(follower, followee, following, at, active_until, source=source)


async def test_records_are_dead_lettered_one_by_one_as_before() -> None:
    store = RefusingStore()
    agent, producer = agent_on(store, follows_concurrency=4)
    # poison's two follows and w2's two make runs (follow_runs): each refused run is applied one by one
    values = [follow_value("w1", "a0", "follow"), None, follow_value("poison", "a0", "follow"), b"{",
              follow_value("w2", "a0", "follow", time="1990-01-01T00:00:00Z"), follow_value("w2", "a1", "follow"),
              follow_value("w3", "w3", "follow"), follow_value("poison", "a1", "follow")]
    records = [record(n, T0_MS + n, value) for n, value in enumerate(values)]
    await agent.process(records)
    assert dead_letters(producer) == [(1, "json"), (2, "store"), (3, "json"), (4, "time"), (6, "schema"), (7, "store")]
    assert await store.follow_edges("w1") == {"a0": Edge(True, (T0_MS + 0) * 1000, PARTITION)}
    assert await store.follow_edges("w2") == {"a1": Edge(True, (T0_MS + 5) * 1000, PARTITION)}


def test_lanes_are_per_follower_in_record_order_and_broken_records_apart() -> None:
    values = [follow_value("x", "a0", "follow"), follow_value("y", "a0", "follow"), b"nope",
              follow_value("x", "a0", "unfollow"), None, follow_value("x", "a1", "follow")]
    records = [record(n, T0_MS, value) for n, value in enumerate(values)]
    lanes, invalid = follower_lanes(records, SETTINGS.max_event_bytes)
    assert [[(r.offset, e.followee, e.op) for r, e in lane] for lane in lanes] == [
        [(0, "a0", "follow"), (3, "a0", "unfollow"), (5, "a1", "follow")], [(1, "a0", "follow")]]
    assert [(r.offset, exc.reason) for r, exc in invalid] == [(2, "json"), (4, "json")]


def test_follows_concurrency_is_a_validated_setting() -> None:
    assert Settings().follows_concurrency >= 1
    assert Settings.from_env({"FANOUT_FOLLOWS_CONCURRENCY": "5"}).follows_concurrency == 5
    with pytest.raises(ConfigError, match="FANOUT_FOLLOWS_CONCURRENCY"):
        Settings.from_env({"FANOUT_FOLLOWS_CONCURRENCY": "0"})
