"""A run of one actor's adds is registered together (``fanout.registering``).

One by one, an account posting N times in a planner batch made about six store round trips a
post before the run's first chunk; now the run's adds with distinct ids are in the registry at
once, and the mark, the author's feed, the pull state and the plans' traces are one call each for
the run. The end state is the one-by-one state (``test_post_runs``); here: the calls themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Sequence
from typing import Any

import pytest

from fanout import Fanout, MemoryStore, Settings, StoreError
from fanout.activity import now_micros
from fanout.codec import activity_event
from fanout.errors import InvalidEvent
from fanout.registering import GROUP_MAX
from fanout.store import PullState, RegistryEntry, TimelineWrite
from fanout.tracing import PlannedChunks

from ..contract.test_targets import Recorder

NOW = now_micros()
T0 = NOW - 3_600_000_000
SETTINGS = Settings(chunk_size=10, follower_page_size=40, feed_kinds=("timeline",))  # hybrid fanout on


class CallingStore(MemoryStore):
    """Counts the calls a plan makes, and how many registry calls are in flight at once (each
    yields to the loop a few times, as a network store's would)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: Counter[str] = Counter()
        self.in_flight = self.most_in_flight = 0
        self.own_feed_writes: list[int] = []  # rows per call to the author's feed
        self.plans_recorded: list[int] = []  # plans per record_plan call

    async def _registry_call(self) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        for _ in range(3):
            await asyncio.sleep(0)
        self.in_flight -= 1

    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        self.calls["get_activity"] += 1
        await self._registry_call()
        return await super().get_activity(activity_id)

    async def put_activity(self, activity: Any) -> None:
        self.calls["put_activity"] += 1
        await self._registry_call()
        await super().put_activity(activity)

    async def last_active(self, user: str) -> int:
        self.calls["last_active"] += 1
        return await super().last_active(user)

    async def pull_state(self, account: str) -> PullState | None:
        self.calls["pull_state"] += 1
        return await super().pull_state(account)

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        if writes and writes[0].feed.startswith("user:"):
            self.own_feed_writes.append(len(writes))
        await super().apply(writes)

    async def record_plan(self, plans: Sequence[PlannedChunks]) -> None:
        self.plans_recorded.append(len({p.activity_id for p in plans}))
        await super().record_plan(plans)


async def followed(store: MemoryStore, followers: int = 25) -> None:
    for n in range(followers):
        await store.set_follow(f"f{n}", "a", True, T0, NOW + 86_400_000_000 if n % 3 == 0 else 0)


def post(activity_id: str, actor: str = "a", **extra: Any) -> Any:
    return activity_event(actor=actor, verb="pin", object=f"o-{activity_id}", id=activity_id, **extra)


async def test_a_run_of_distinct_ids_is_registered_at_once_and_written_in_one_call_each() -> None:
    store = CallingStore()
    await followed(store)
    fanout = Fanout(store, SETTINGS)  # eager: the chunks are written in-process
    results = await fanout.handle_activities([(post(f"p{n}"), T0 + n) for n in range(5)])
    assert [r.activity.id for r in results if not isinstance(r, InvalidEvent) and r.activity] == [
        f"p{n}" for n in range(5)]
    assert store.most_in_flight == 5  # one by one: 1
    del store.calls["get_activity"]  # the registry's two a post, and the eager writer's one a chunk
    assert store.calls == {"put_activity": 5, "last_active": 1, "pull_state": 1}  # one by one: 5, 5, 5
    assert store.own_feed_writes == [5]  # one by one: [1, 1, 1, 1, 1]
    assert store.plans_recorded == [5]
    assert [a.id for a in await fanout.read("f0", limit=10)] == [f"p{n}" for n in reversed(range(5))]


async def test_an_id_seen_again_in_a_run_is_registered_after_the_first_and_keeps_its_time() -> None:
    store = CallingStore()
    await followed(store)
    fanout = Fanout(store, SETTINGS)
    events = [(post("x"), T0), (post("y"), T0 + 1), (post("x"), T0 + 5)]  # x again: a producer's retry
    results = await fanout.handle_activities(events)
    times = [r.activity.ts for r in results if not isinstance(r, InvalidEvent) and r.activity]
    assert times == [T0, T0 + 1, T0]  # the retry keeps the first time, as one by one
    assert store.most_in_flight == 2  # x and y together, then x again alone
    assert len([a for a in await fanout.read("f0", limit=10) if a.id == "x"]) == 1


async def test_groups_hold_at_most_group_max_adds() -> None:
    store = CallingStore()
    await followed(store, 3)
    fanout = Fanout(store, SETTINGS, sink=Recorder())
    await fanout.handle_activities([(post(f"p{n}"), T0 + n) for n in range(GROUP_MAX + 5)])
    assert store.most_in_flight == GROUP_MAX
    assert sum(store.own_feed_writes) == GROUP_MAX + 5  # in one call (cut where a trim falls due)


HOUR = 3_600_000_000


@pytest.mark.parametrize("gaps_h", [[0, 1, 2, 3, 4], [0, 13, 1, 13], [30 * 24, 0, 5 * 24]])
async def test_the_activity_mark_ends_as_one_by_one_in_one_read_and_at_most_one_write(gaps_h: list[int]) -> None:
    """One by one, each post marks its author unless the mark is under a 14th of the 7-day window
    (12 h) old; the run reads the mark once and writes only the mark that leaves. Replayed old
    posts are old activity; a refused post marks nothing."""
    settings = SETTINGS.replace(pull_threshold=0)
    old = T0 - 40 * 24 * HOUR
    times = [old + sum(gaps_h[: n + 1]) * HOUR for n in range(len(gaps_h))]
    events = [(post(f"p{n}"), t) for n, t in enumerate(times)] + [(post("bad", time="1990-01-01T00:00:00Z"), T0)]
    stores = CallingStore(), CallingStore()
    for store in stores:
        await followed(store)
        await store.set_follow("a", "b", True, T0)  # a follows b: a's row under b holds a's mark
    together, one_by_one = (Fanout(store, settings, sink=Recorder()) for store in stores)
    results = await together.handle_activities(events)
    assert isinstance(results[-1], InvalidEvent) and results[-1].reason == "time"
    for event, accepted in events:
        with contextlib.suppress(InvalidEvent):
            await one_by_one.handle_activity(event, accepted)
    assert stores[0].calls["last_active"] == 1 and stores[0].calls["pull_state"] == 0  # hybrid off: no read
    assert await stores[0].last_active("a") == await stores[1].last_active("a")
    assert stores[0]._active_until["b"] == stores[1]._active_until["b"]


class FailingOne(CallingStore):
    """put_activity of ``bad`` fails at once; the others of its group are still in flight."""

    async def put_activity(self, activity: Any) -> None:
        if activity.id == "bad":
            raise StoreError("timeout", retriable=True)
        await super().put_activity(activity)


async def test_a_store_failure_is_raised_after_the_rest_of_its_group_settled() -> None:
    store = FailingOne()
    await followed(store)
    sink = Recorder()
    fanout = Fanout(store, SETTINGS, sink=sink)
    with pytest.raises(StoreError):
        await fanout.handle_activities([(post(i), T0) for i in ("p1", "bad", "p2")])
    assert store.in_flight == 0  # nothing of the group left running
    assert {i for i in ("p1", "p2") if await store.get_activity(i)} == {"p1", "p2"}
    assert not sink.chunks and store.own_feed_writes == []  # nothing fanned out or written: a retry does it all
