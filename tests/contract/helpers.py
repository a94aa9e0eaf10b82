"""What the store contract suites share: hand-made activities at fixed times, a chunk recorder, and
reads of whole feeds."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fanout import Activity, ChunkMessage, Fanout, Settings
from fanout.activity import to_micros
from fanout.store import Store

T0 = datetime(2024, 1, 1, tzinfo=UTC)
Names = Callable[[str], str]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def act(actor: str, n: int, *, ts: int | None = None, **fields: Any) -> Activity:
    """A hand-made activity ``<actor>-<n>`` at T0 + n seconds (or at ``ts``)."""
    return Activity(
        id=f"{actor}-{n:03d}",
        actor=actor,
        verb="pin",
        object=f"object:{n}",
        ts=to_micros(at(n)) if ts is None else ts,
        **fields,
    )


def ids(activities: list[Activity]) -> list[str]:
    return [a.id for a in activities]


class Recorder:
    """A ChunkSink that keeps the chunks instead of writing them."""

    def __init__(self) -> None:
        self.chunks: list[ChunkMessage] = []

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks.append(chunk)


def make_fanout(store: Store, settings: Settings, **changes: Any) -> Fanout:
    # never closed: the Cassandra store is shared by the session
    sink = changes.pop("sink", None)
    return Fanout(store, settings.replace(**changes), sink=sink)


async def whole(store: Store, feed: str) -> list[str]:
    return ids(await store.read(feed, limit=10_000))


