"""How many store round trips a post waits before its followers' first chunk.

Under load every round trip of the planner waits at a busy node (behind the writers' requests),
so the planner's share of a HIGH chunk's latency is about its number of sequential round trips.
A store that holds every call until the test releases it counts them: the calls waiting when
everything else is blocked are one round, released together (what runs at once costs one).

A post of a pushed account needs, in order: the registry's read, write and read again (the
account's activity mark and pull state read meanwhile), then its user feed and mark written
together, then the first follower page: five rounds, not seven (eight with the mark written) one
call after another. A run whose adds the codec refuses makes no store call at all.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable
from contextvars import ContextVar
from typing import Any, TypeVar

from fanout import Fanout, MemoryStore, Settings
from fanout.activity import now_micros
from fanout.codec import ChunkMessage, activity_event

T = TypeVar("T")
NOW = now_micros()
ACTIVE = NOW + 86_400_000_000


class Rounds:
    """Holds each store call until ``run`` releases the round it is in."""

    def __init__(self) -> None:
        self.waiting: list[asyncio.Future[None]] = []
        self.round = 0
        self.calls: list[tuple[int, str]] = []  # (round, method)

    async def step(self, method: str) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append(future)
        self.calls.append((self.round + 1, method))
        await future

    async def run(self, work: Awaitable[T]) -> T:
        task = asyncio.ensure_future(work)
        while not task.done():
            for _ in range(50):  # let every runnable task reach its next store call
                await asyncio.sleep(0)
            if self.waiting:
                self.round += 1
                waiting, self.waiting = self.waiting, []
                for future in waiting:
                    future.set_result(None)
        return task.result()


_INSIDE: ContextVar[bool] = ContextVar("inside_a_store_call", default=False)
_END = object()


class RoundStore(MemoryStore):
    """The memory store, each call one round trip (``Rounds``): every public coroutine method and
    follower page, so a new call on the path counts too; a call the store makes inside one of its
    own (``set_active`` reads ``following``) is part of that round trip, not another."""

    def __init__(self, rounds: Rounds) -> None:
        super().__init__()
        self.rounds = rounds


def _held(name: str, method: Any) -> Any:
    if inspect.isasyncgenfunction(method):  # a round trip for the first page (the reads it makes are its own)
        async def pages(self: RoundStore, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
            if not _INSIDE.get():
                await self.rounds.step(name)
            inner = method(self, *args, **kwargs)
            token = _INSIDE.set(True)
            try:
                first = await anext(inner, _END)
            finally:
                _INSIDE.reset(token)  # before the page goes to the caller: its own calls count
            if first is _END:
                return
            yield first
            async for page in inner:
                yield page
        return pages

    async def call(self: RoundStore, *args: Any, **kwargs: Any) -> Any:
        if _INSIDE.get():
            return await method(self, *args, **kwargs)
        await self.rounds.step(name)
        token = _INSIDE.set(True)
        try:
            return await method(self, *args, **kwargs)
        finally:
            _INSIDE.reset(token)
    return call


for _name, _method in inspect.getmembers(MemoryStore):
    if not _name.startswith("_") and _name != "close" and (
        inspect.iscoroutinefunction(_method) or inspect.isasyncgenfunction(_method)
    ):
        setattr(RoundStore, _name, _held(_name, _method))


class FirstChunk:
    def __init__(self, rounds: Rounds) -> None:
        self.rounds = rounds
        self.at: int | None = None  # the round after which the first chunk was sent

    async def send(self, chunk: ChunkMessage) -> None:
        if self.at is None:
            self.at = self.rounds.round


async def first_chunk_round(posts: int, *, marked: bool) -> tuple[int | None, list[tuple[int, str]]]:
    rounds = Rounds()
    store = RoundStore(rounds)
    for n in range(3):
        await rounds.run(store.set_follow(f"f{n}", "author", True, NOW - 1_000, ACTIVE if n else 0))
    if marked:  # marked active a moment ago: no mark to write
        await rounds.run(store.set_active("author", ACTIVE, NOW))
    sink = FirstChunk(rounds)
    fanout = Fanout(store, Settings(), sink=sink)
    events: list[tuple[Any, int | None]] = [
        (activity_event(actor="author", verb="post", object=f"p{k}", id=f"post-{k}"), None) for k in range(posts)
    ]
    rounds.calls.clear()
    rounds.round = 0
    results = await rounds.run(fanout.handle_activities(events))
    assert [r.feeds for r in results] == [3] * posts  # type: ignore[union-attr]
    return sink.at, rounds.calls


async def test_a_post_reaches_its_first_chunk_after_five_round_trips() -> None:
    at, calls = await first_chunk_round(1, marked=False)
    assert at == 5, calls
    by_round = {n: sorted(m for r, m in calls if r == n) for n in range(1, 6)}
    assert by_round[1] == ["get_activity", "last_active", "pull_state"]
    assert by_round[2] == ["put_activity"]
    assert by_round[3] == ["get_activity"]
    assert by_round[4] == ["apply", "set_active"]  # the author's feed and its activity mark
    assert by_round[5] == ["priority_pages"]


async def test_a_run_of_posts_waits_as_long_as_one() -> None:
    at, calls = await first_chunk_round(5, marked=True)
    assert at == 5, calls
    assert sum(m == "last_active" for _, m in calls) == 1  # read once for the run, written never (marked)
    assert not any(m == "set_active" for _, m in calls)


async def test_a_run_the_codec_refuses_makes_no_store_call() -> None:
    rounds = Rounds()
    fanout = Fanout(RoundStore(rounds), Settings(), sink=FirstChunk(rounds))
    events: list[tuple[Any, int | None]] = [
        (activity_event(actor="author", verb="post", object="p", id=f"old-{k}", time="1990-01-01T00:00:00Z"), None)
        for k in range(3)
    ]
    results = await rounds.run(fanout.handle_activities(events))
    assert [getattr(r, "reason", None) for r in results] == ["time"] * 3
    assert rounds.calls == []  # so a store outage does not hold back their dead letters
