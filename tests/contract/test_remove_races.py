"""A remove wins, produced anywhere, in any order (issue 11, item 1), on both stores.

The planner's add (read the registry, register, fan out) and remove (read, record the removal,
fan out) race when they run at once: two partitions of one batch, or two planners. A remove whose
fan-out is delayed races with unfollows and with add chunks still on their way. Each test pins
one interleaving by stopping one side at a store call (``Paused``) while the other side runs.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, cast

import pytest

from fanout import ChunkMessage, Fanout, Settings, Store
from fanout.writer import TimelineWriter

Names = Callable[[str], str]


class Paused:
    """Delegates to ``inner``; the first call of ``method`` waits (``reached`` set) until ``go``."""

    def __init__(self, inner: Store, method: str) -> None:
        self.inner = inner
        self.method = method
        self.reached = asyncio.Event()
        self.go = asyncio.Event()

    def __getattr__(self, name: str) -> Any:
        real = getattr(self.inner, name)
        if name != self.method:
            return real

        async def paused(*args: Any, **kwargs: Any) -> Any:
            if not self.reached.is_set():
                self.reached.set()
                await self.go.wait()
            return await real(*args, **kwargs)

        return paused

    def store(self) -> Store:
        return cast(Store, self)


class Recorder:
    """A ChunkSink that holds the chunks back (in flight), or fails like a broker outage."""

    def __init__(self, *, failing: bool = False) -> None:
        self.chunks: list[ChunkMessage] = []
        self.failing = failing

    async def send(self, chunk: ChunkMessage) -> None:
        if self.failing:
            raise ConnectionError("broker unreachable (injected)")
        self.chunks.append(chunk)


async def everywhere(store: Store, *feeds: str) -> list[str]:
    """The feeds (of ``feeds``) that hold an entry."""
    return [f for f in feeds if await store.read(f, limit=10)]


@pytest.mark.parametrize(
    ("slow", "stops_at"),
    [("remove", "mark_removed"), ("add", "put_activity")],
    ids=["remove-checked-before-the-add-registered", "add-checked-before-the-remove-was-recorded"],
)
async def test_an_add_and_its_remove_in_two_planners_end_removed(
    store: Store, settings: Settings, unique_name: Names, slow: str, stops_at: str
) -> None:
    """Two planners (or two partitions of one batch) plan an add and its remove at once. Either the
    remove found no activity and, before it records the removal, the add registers and fans out;
    or the add found no removal and, before it registers, the remove (finding nothing) is recorded."""
    author, reader, activity_id = unique_name("author"), unique_name("reader"), unique_name("id")
    await Fanout(store, settings).follow(reader, author)
    gate = Paused(store, stops_at)

    async def add(fanout: Fanout) -> object:
        return await fanout.add(actor=author, verb="pin", object="o", id=activity_id)

    async def remove(fanout: Fanout) -> object:
        return await fanout.remove(activity_id, actor=author)

    first, second = (remove, add) if slow == "remove" else (add, remove)
    stopped = asyncio.ensure_future(first(Fanout(gate.store(), settings)))
    await gate.reached.wait()
    await second(Fanout(store, settings))
    gate.go.set()
    await stopped
    assert await everywhere(store, f"timeline:{reader}", f"user:{author}") == []


async def test_a_late_add_chunk_loses_to_a_remove_whose_fanout_was_delayed(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """Issue 11.1b: the add's chunk is in flight; the remove is recorded but its fan-out fails (a
    broker outage); the follower unfollows (the author's feed no longer holds the activity, the
    follower's not yet); the remove is planned again, without that ex-follower; the add lands."""
    author, reader, activity_id = unique_name("author"), unique_name("reader"), unique_name("id")
    eager = Fanout(store, settings)
    await eager.follow(reader, author)
    in_flight = Recorder()
    await Fanout(store, settings, sink=in_flight).add(actor=author, verb="pin", object="o", id=activity_id)
    with contextlib.suppress(ConnectionError):  # the planner's batch fails and is re-delivered later
        await Fanout(store, settings, sink=Recorder(failing=True)).remove(activity_id, actor=author)
    await eager.unfollow(reader, author)
    await Fanout(store, settings, sink=Recorder()).remove(activity_id, actor=author)  # re-planned
    writer = TimelineWriter(store, max_length=settings.max_length, trim_every=settings.trim_every)
    await writer.write_chunks(in_flight.chunks)
    assert await everywhere(store, f"timeline:{reader}", f"user:{author}") == []


async def test_a_remove_recorded_while_an_add_chunk_is_being_written_wins(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """As above, but the add chunk reached the writer first: the remove is recorded, the follower
    unfollows and the remove is re-planned while the chunk's write is on its way to the store. A
    registry check before the write would pass; the writer checks after it."""
    author, reader, activity_id = unique_name("author"), unique_name("reader"), unique_name("id")
    eager = Fanout(store, settings)
    await eager.follow(reader, author)
    in_flight = Recorder()
    await Fanout(store, settings, sink=in_flight).add(actor=author, verb="pin", object="o", id=activity_id)
    gate = Paused(store, "apply")
    writer = TimelineWriter(gate.store(), max_length=settings.max_length, trim_every=settings.trim_every)
    writing = asyncio.ensure_future(writer.write_chunks(in_flight.chunks))
    await gate.reached.wait()
    with contextlib.suppress(ConnectionError):
        await Fanout(store, settings, sink=Recorder(failing=True)).remove(activity_id, actor=author)
    await eager.unfollow(reader, author)
    await Fanout(store, settings, sink=Recorder()).remove(activity_id, actor=author)
    gate.go.set()
    await writing
    assert await everywhere(store, f"timeline:{reader}", f"user:{author}") == []
