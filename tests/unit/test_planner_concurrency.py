"""The planner plans a batch's actors concurrently, each actor's events in order (no Kafka).

``PlannerAgent.process`` runs on hand-made records against a memory store that yields to the event
loop before its calls, so the actors' plans really interleave. It must produce the same chunks and
dead letters and leave the same feeds and registry as the records planned one by one in partition
order (the planner before it had lanes), plan each actor's events in order, hold at most
``planner_concurrency`` actors at once, and let a failure that is not a record's propagate as it
is, with nothing left running.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest

from fanout import MemoryStore, Settings, StoreError
from fanout.activity import now_micros
from fanout.agents.deadletters import DeadLetters
from fanout.agents.lanes import group_lanes
from fanout.agents.planner import PlannerAgent, _lane_keys
from fanout.codec import ActivityEvent, decode_activity_event, decode_chunk
from fanout.errors import ConfigError
from fanout.store import FollowerRow, RegistryEntry, TimelineWrite

from .test_follows_concurrency import FailingStore as FollowsFailingStore
from .test_poison_records import Producer, Record

SETTINGS = Settings(chunk_size=25, follower_page_size=40, agent_retry_attempts=1, pull_threshold=0,
                    feed_kinds=("timeline", "aggregated"))
TOPIC = SETTINGS.topic("activities")
AUTHORS = [f"a{n}" for n in range(7)]
NOW_MS = now_micros() // 1000
T0_MS = NOW_MS - 3_600_000


class YieldingStore(MemoryStore):
    """A memory store that yields to the event loop 0-2 times before the calls a plan makes (as a
    network store would), follower pages included."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)

    async def _pause(self) -> None:
        for _ in range(self.rng.randint(0, 2)):
            await asyncio.sleep(0)

    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        await self._pause()
        return await super().get_activity(activity_id)

    async def put_activity(self, activity: Any) -> None:
        await self._pause()
        await super().put_activity(activity)

    async def mark_removed(self, activity_id: str) -> None:
        await self._pause()
        await super().mark_removed(activity_id)

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        await self._pause()
        await super().apply(writes)

    async def followers(self, followee: str, *, page_size: int) -> AsyncIterator[list[FollowerRow]]:
        async for page in super().followers(followee, page_size=page_size):
            await self._pause()
            yield page


async def seeded(store: MemoryStore, rng: random.Random) -> None:
    """Each author with 0-120 followers, some of them active (HIGH)."""
    for author in AUTHORS:
        for n in range(rng.randint(0, 120)):
            active = (NOW_MS + 86_400_000) * 1000 if rng.random() < 0.3 else 0
            await store.set_follow(f"f{n}", author, True, T0_MS * 1000, active)


def activity_value(actor: str, activity_id: str, op: str = "add", **extra: Any) -> bytes:
    body = {"actor": actor, "verb": "pin", "object": f"o-{activity_id}", "id": activity_id, **extra}
    if op == "remove":
        body = {"actor": actor, "op": "remove", "id": activity_id}
    return json.dumps(body).encode()


def random_batch(rng: random.Random, first_offset: int, size: int, known: list[tuple[str, str]]) -> list[Record]:
    """Adds by several actors, removes of earlier adds (some in the same batch, one before its add),
    repeated adds (a retry), and broken records."""
    out: list[Record] = []
    while len(out) < size:
        offset = first_offset + len(out)
        ts = T0_MS + offset
        actor = rng.choice(AUTHORS)
        roll = rng.random()
        if roll < 0.04:
            value: bytes | None = None
        elif roll < 0.08:
            value = b'{"actor": "a1", "verb"'
        elif roll < 0.10:
            value = activity_value(actor, f"{actor}-old{offset}", time="1990-01-01T00:00:00Z")
        elif roll < 0.25 and known:
            actor, activity_id = rng.choice(known)
            value = activity_value(actor, activity_id, "remove")
        elif roll < 0.30:
            value = activity_value(actor, f"{actor}-early{offset}", "remove")  # its add comes later
            out.append(Record(TOPIC, 0, offset, ts, actor.encode(), value))
            value = activity_value(actor, f"{actor}-early{offset}")
            offset, ts = offset + 1, ts + 1
        elif roll < 0.35 and known:
            actor, activity_id = rng.choice(known)
            value = activity_value(actor, activity_id)  # the same add again
        else:
            activity_id = f"{actor}-{offset}"
            known.append((actor, activity_id))
            value = activity_value(actor, activity_id)
        out.append(Record(TOPIC, 0, offset, ts, actor.encode(), value))
    return out


def planner_on(store: MemoryStore, **changes: Any) -> tuple[PlannerAgent, Producer]:
    settings = SETTINGS.replace(**changes)
    planner, producer = PlannerAgent(settings, store), Producer()
    planner.producer = producer  # type: ignore[assignment]  # a fake: records what is sent
    planner.dead = DeadLetters(producer, settings, planner.role)
    planner.acks.begin()  # as the partition task does: this task's chunks are owed here
    return planner, producer


Sent = tuple[str, str, str, str, tuple[str, ...], int]  # (topic, op, priority, activity id, feeds, write_ts)


def chunks(producer: Producer) -> list[Sent]:
    """The chunks produced, in send order."""
    out: list[Sent] = []
    for topic, _, value, _ in producer.sent:
        if topic in (SETTINGS.topic("high"), SETTINGS.topic("low")):
            assert value is not None
            chunk = decode_chunk(value)
            out.append((topic, chunk.op, chunk.priority, chunk.activity.id, tuple(chunk.feeds), chunk.write_ts))
    return out


def dead_letters(producer: Producer) -> list[tuple[int, str]]:
    return sorted((int(h["fanout-source-offset"]), h["fanout-reason"].decode())
                  for topic, _, _, h in producer.sent if topic == SETTINGS.topic("dead"))


def actor_order(sent: list[Sent]) -> dict[str, list[tuple[str, set[str]]]]:
    """Per actor, the phases of its chunks in send order: the add chunks of consecutive adds as one
    set of ids (a run is planned in one pass over the followers, its chunks interleaved), each
    remove's chunks alone."""
    order: dict[str, list[tuple[str, set[str]]]] = {}
    for _, op, _, activity_id, _, _ in sent:
        seq = order.setdefault(activity_id.split("-")[0], [])
        if seq and seq[-1][0] == op and (op == "add" or activity_id in seq[-1][1]):
            seq[-1][1].add(activity_id)
        else:
            seq.append((op, {activity_id}))
    return order


async def state(store: MemoryStore) -> dict[str, Any]:
    feeds = {feed: sorted((i, cell[0]) for i, cell in s.cells.items()) for feed, s in store._feeds.items()}
    registry = {i: await store.get_activity(i) for i in sorted(store._registry)}
    return {"feeds": feeds, "registry": registry}


@pytest.mark.parametrize("seed", range(12))
async def test_the_concurrent_planner_ends_as_the_records_planned_one_by_one(seed: int) -> None:
    rng = random.Random(seed)
    concurrent, reference = YieldingStore(seed), MemoryStore()
    await seeded(concurrent, random.Random(seed + 1000))
    await seeded(reference, random.Random(seed + 1000))
    planner, producer = planner_on(concurrent, planner_concurrency=rng.choice([2, 4, 16]))
    one_by_one, ref_producer = planner_on(reference, planner_concurrency=1)
    await planner.on_started()
    await one_by_one.on_started()
    records: list[Record] = []
    known: list[tuple[str, str]] = []
    for _ in range(3):  # consecutive batches of the partition
        batch = random_batch(rng, len(records), rng.randint(10, 40), known)
        records += batch
        await planner.process(list(batch))
    for rec in records:
        await one_by_one.process([rec])
    got, want = chunks(producer), chunks(ref_producer)
    assert Counter(got) == Counter(want) and len(got) > 10
    assert actor_order(got) == actor_order(want)  # each actor's events planned in record order
    assert dead_letters(producer) == dead_letters(ref_producer)
    assert {reason for _, reason in dead_letters(producer)} >= {"json"}
    assert await state(concurrent) == await state(reference)


async def test_actors_interleave_and_at_most_planner_concurrency_are_planned_at_once() -> None:
    store = YieldingStore(3)
    await seeded(store, random.Random(4))
    planner, _ = planner_on(store, planner_concurrency=3)
    await planner.on_started()
    inside: set[str] = set()
    most = 0
    handle = planner.fanout.handle_activities
    started: list[str] = []

    async def counted(events: list[tuple[ActivityEvent, int | None]]) -> Any:
        nonlocal most
        (actor,) = {event.actor for event, _ in events}  # a lane's events: one actor's, in one call
        assert actor not in inside  # one actor's events never overlap
        inside.add(actor)
        started.append(actor)
        most = max(most, len(inside))
        for _ in range(3):
            await asyncio.sleep(0)
        try:
            return await handle(events)
        finally:
            inside.discard(actor)

    planner.fanout.handle_activities = counted  # type: ignore[method-assign,assignment]
    records = [Record(TOPIC, 0, n, T0_MS + n, b"k", activity_value(AUTHORS[n % 6], f"{AUTHORS[n % 6]}-{n}"))
               for n in range(24)]
    await planner.process(records)
    assert most == 3
    assert started[:3] == AUTHORS[:3]  # the first three actors began together
    assert len(started) == 6  # each actor's 4 posts planned in one call
    for author in AUTHORS[:6]:
        ids = [a.id for a in await store.read(f"user:{author}", limit=10)]
        assert ids == sorted(ids, key=lambda i: int(i.split("-")[1]), reverse=True) and len(ids) == 4


class FailingStore(FollowsFailingStore):
    """``put_activity`` of actor ``broken`` fails retriably; ``stuck`` waits until cancelled."""

    async def put_activity(self, activity: Any) -> None:
        await self.sabotage(activity.actor)
        await super().put_activity(activity)


async def test_a_failure_not_tied_to_a_record_cancels_the_other_actors_and_propagates_as_it_is() -> None:
    store = FailingStore()
    planner, producer = planner_on(store, planner_concurrency=4)
    await planner.on_started()
    records = [Record(TOPIC, 0, n, T0_MS + n, actor.encode(), activity_value(actor, f"{actor}-{n}"))
               for n, actor in enumerate(["ok1", "stuck", "broken", "ok2"])]
    async with asyncio.timeout(10):
        with pytest.raises(StoreError, match="injected") as raised:
            await planner.process(records)
    assert raised.value.retriable  # what the partition task asks: seek back and re-fetch
    assert store.stuck_cancelled.is_set()
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running
    assert dead_letters(producer) == []


def test_planner_concurrency_and_follower_page_size_are_validated_settings() -> None:
    assert Settings.from_env({"FANOUT_PLANNER_CONCURRENCY": "5"}).planner_concurrency == 5
    assert Settings.from_env({"FANOUT_FOLLOWER_PAGE_SIZE": "7"}).follower_page_size == 7
    for name in ("FANOUT_PLANNER_CONCURRENCY", "FANOUT_FOLLOWER_PAGE_SIZE"):
        with pytest.raises(ConfigError, match=name):
            Settings.from_env({name: "0"})


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("second", ["add", "remove"])
async def test_two_actors_naming_one_id_keep_their_partition_order(seed: int, second: str) -> None:
    """A adds X, then B adds (or removes) X: one by one, B's event is refused as a conflict and A's
    post is delivered; the planner must not let B's event overtake A's (nor run beside it)."""
    concurrent, reference = YieldingStore(seed), MemoryStore()
    for store in (concurrent, reference):
        await seeded(store, random.Random(seed))
    records = [Record(TOPIC, 0, 0, T0_MS, b"a1", activity_value("a1", "shared")),
               Record(TOPIC, 0, 1, T0_MS + 1, b"a2", activity_value("a2", "shared", second))]
    planner, producer = planner_on(concurrent, planner_concurrency=16)
    one_by_one, ref_producer = planner_on(reference, planner_concurrency=1)
    for agent in (planner, one_by_one):
        await agent.on_started()
    await planner.process(records)
    for rec in records:
        await one_by_one.process([rec])
    assert dead_letters(ref_producer) == [(1, "conflict")]
    assert dead_letters(producer) == dead_letters(ref_producer)
    assert Counter(chunks(producer)) == Counter(chunks(ref_producer))
    assert await state(concurrent) == await state(reference)


def test_lanes_join_events_that_share_an_actor_or_an_explicit_id() -> None:
    values = [activity_value("a", "x"), activity_value("b", "y"), activity_value("c", "z"),
              activity_value("c", "x", "remove"), b"{", activity_value("d", "w"), activity_value("b", "z")]
    records = [Record(TOPIC, 0, n, T0_MS, b"k", value) for n, value in enumerate(values)]
    lanes, invalid = group_lanes(records, decode_activity_event, _lane_keys, "activity event")
    # a and c share x, c and b share z (through c's own events): one lane; d alone
    assert [[r.offset for r, _ in lane] for lane in lanes] == [[0, 1, 2, 3, 6], [5]]
    assert [(r.offset, exc.reason) for r, exc in invalid] == [(4, "json")]
