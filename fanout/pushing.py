"""Pushing: an author's follower pages -> chunks of at most ``chunk_size`` feeds -> a ``ChunkSink``.

One pass over the follower pages can carry several activities of one author (a run, as the
planner gets them when an account posts several times in a batch): each page is cut into every
activity's chunks, so N posts read the author's followers once instead of N times. The caller
reads the pages only after every activity of the run is registered and in the author's feed
(``Fanout.handle_activities``), as for one activity: a follow applied after the read copies them
in from that feed (``fanout.graph``), one applied before is in the pages.

The plans of a pass are recorded in one write once all their chunks are sent (delivery
tracing, ``fanout.tracing``); each activity's ``to`` targets are chunked after the followers
(``fanout.targeting``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from .activity import Activity, now_micros
from .codec import ChunkMessage
from .feeds import feed_ids
from .followers import FollowerSource, Priority
from .planner import Chunker
from .pull import PullPolicy
from .settings import Settings
from .store import PullState, Store
from .targeting import placed, target_chunks
from .tracing import PlanCounter


class ChunkSink(Protocol):
    """Where planned chunks go: the in-process writer (eager) or a Kafka topic per priority."""

    async def send(self, chunk: ChunkMessage) -> None: ...


@dataclass(slots=True)
class PlanResult:
    """What planning one activity event did."""

    activity: Activity | None  # None: a remove of an activity never seen (recorded as removed)
    op: str
    chunks: int = 0
    feeds: int = 0
    skipped: str = ""  # why nothing was fanned out, if so


class _Planned:
    """One activity of a pass: its write time, chunker, counters and result."""

    __slots__ = ("activity", "chunker", "result", "sink", "write_ts")

    def __init__(self, activity: Activity, op: str, write_ts: int, chunk_size: int, sink: ChunkSink) -> None:
        self.activity = activity
        self.write_ts = write_ts
        self.chunker = Chunker(chunk_size)
        self.result = PlanResult(activity, op)
        self.sink = PlanCounter(sink)


class Pusher:
    def __init__(self, store: Store, settings: Settings, followers: FollowerSource, pull: PullPolicy, window: int):
        self.store = store
        self.settings = settings
        self.followers = followers
        self.pull = pull
        self.window = window

    async def push(
        self, sink: ChunkSink, items: Sequence[tuple[Activity, int]], op: str, now: int, *, watch: bool = False,
        state: PullState | None = None,
    ) -> list[PlanResult]:
        """Chunk every (activity, write_ts) of ``items`` (one author's) for the author's followers
        in one pass over the pages, then each one's targets; ``watch``: stop once the followers
        pass the pull threshold (``PullPolicy.watch``, from the oldest activity of the run on)."""
        size = self.settings.chunk_size
        planned = [_Planned(activity, op, write_ts, size, sink) for activity, write_ts in items]
        oldest = min((p.activity for p in planned), key=lambda a: a.ts)
        pages = self.followers.pages(oldest.actor, now)
        if watch:  # crossing up: the fanout stops once the followers pass the pull threshold
            pages = self.pull.watch(oldest, state, pages)
        async for priority, ids in pages:
            for p in planned:
                for chunk in p.chunker.add(priority, ids):
                    await self._send(p, chunk)
        for p in planned:
            for chunk in p.chunker.flush():
                await self._send(p, chunk)
        await self._finish(planned, now)
        return [p.result for p in planned]

    async def _send(self, p: _Planned, chunk: tuple[Priority, list[str]]) -> None:
        priority, users = chunk
        await self._send_feeds(p, priority, feed_ids(self.settings.feed_kinds, users))
        p.result.feeds += len(users)

    async def send_targets(self, sink: ChunkSink, activity: Activity, op: str, write_ts: int, now: int) -> PlanResult:
        """Only the activity's ``to`` targets (a pulled account's post: not its followers)."""
        p = _Planned(activity, op, write_ts, self.settings.chunk_size, sink)
        await self._finish([p], now)
        return p.result

    async def _finish(self, planned: list[_Planned], now: int) -> None:
        """The chunks of each activity's ``to`` targets (``fanout.targeting``), then their plans'
        traces in one store call."""
        for p in planned:
            chunks = await target_chunks(self.store, p.activity, now, self.window, self.settings.chunk_size)
            for priority, feeds in chunks:
                await self._send_feeds(p, priority, feeds)
                p.result.feeds += len(feeds)
        at = now_micros()
        await self.store.record_plan([plan for p in planned for plan in p.sink.plans(p.activity.id, p.result.op, at)])

    async def _send_feeds(self, p: _Planned, priority: Priority, feeds: list[str]) -> None:
        message = ChunkMessage(
            op="add" if p.result.op == "add" else "remove",
            priority="high" if priority is Priority.HIGH else "low",
            activity=placed(p.activity),
            feeds=feeds,
            write_ts=p.write_ts,
        )
        await p.sink.send(message)
        p.result.chunks += 1
