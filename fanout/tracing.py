"""Delivery tracing: has an activity (or its removal) reached every feed it was planned into?

Two records, one write each, no per-row bookkeeping:

* the **plan**: when the planner has handed the last chunk of an activity (or of its removal) to
  its sink, it records per priority how many chunks and feeds it planned (``PlanCounter`` wraps the
  sink and counts them; ``Store.record_plan``: one row per priority);
* a **landing** per chunk: once the store acknowledged every row of a chunk, the writer records the
  chunk (``Store.record_landed``: one row per chunk, keyed by the activity, the op and the chunk's
  first feed id, which is also its Kafka key). A re-delivered chunk writes the same row again, so
  it is counted once (its landing time becomes that of its latest write).

``delivery_report`` folds both into a ``Delivery``: planned and written chunks and feeds per
priority, when the first and the last chunk landed, and ``complete`` once the plan is recorded and
every planned chunk has landed. Before the plan is recorded (a fanout still being planned) it is
not complete, however many chunks landed. A re-plan of the same activity (a planner restarted
mid-batch) records the same plan again; if the followers changed in between, a chunk of the
first plan that the second does not have still counts as written (``chunks_written`` can then
pass ``chunks_planned``; ``complete`` asks for each planned chunk count to be reached).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Final, NamedTuple, Protocol

import msgspec

from .activity import from_micros
from .codec import ChunkMessage

DEFAULT_TRACE_TTL_SECONDS: Final = 7 * 86_400  # FANOUT_TRACE_TTL_SECONDS
PRIORITIES = ("high", "low")
OPS = ("add", "remove")


class PlannedChunks(NamedTuple):
    """What the planner handed to its sink for one activity, op and priority."""

    activity_id: str
    op: str  # add | remove
    priority: str  # high | low
    chunks: int
    feeds: int
    at: int  # microseconds: when the plan was recorded


class ChunkLanded(NamedTuple):
    """One chunk whose rows the store acknowledged."""

    activity_id: str
    op: str
    chunk: str  # the chunk's first feed id (its Kafka key): the same for a re-delivery
    priority: str
    feeds: int
    at: int  # microseconds: when its rows were acknowledged


def chunk_key(chunk: ChunkMessage) -> str:
    return chunk.feeds[0] if chunk.feeds else ""


def landings(chunks: Sequence[ChunkMessage], at: int) -> list[ChunkLanded]:
    """The landing records of chunks written at ``at`` (one per distinct chunk)."""
    seen: dict[tuple[str, str, str], ChunkLanded] = {}
    for c in chunks:
        key = (c.activity.id, c.op, chunk_key(c))
        seen[key] = ChunkLanded(c.activity.id, c.op, key[2], c.priority, len(c.feeds), at)
    return list(seen.values())


class _Sink(Protocol):
    async def send(self, chunk: ChunkMessage) -> None: ...


class PlanCounter:
    """A ``ChunkSink`` that passes chunks on to ``sink`` and counts them per priority."""

    def __init__(self, sink: _Sink) -> None:
        self.sink = sink
        self.counts = {p: [0, 0] for p in PRIORITIES}  # priority -> [chunks, feeds]

    async def send(self, chunk: ChunkMessage) -> None:
        await self.sink.send(chunk)
        counts = self.counts[chunk.priority]
        counts[0] += 1
        counts[1] += len(chunk.feeds)

    def plans(self, activity_id: str, op: str, at: int) -> list[PlannedChunks]:
        """One record per priority (zeros included: a plan of nothing is complete)."""
        return [PlannedChunks(activity_id, op, p, c[0], c[1], at) for p, c in self.counts.items()]


class PriorityDelivery(msgspec.Struct, kw_only=True):
    chunks_planned: int | None  # None: the plan is not recorded yet
    feeds_planned: int | None
    chunks_written: int
    feeds_written: int


class OpDelivery(msgspec.Struct, kw_only=True):
    """The delivery of one op (the add, or the removal) of an activity."""

    planned: bool
    complete: bool
    planned_at: datetime | None
    first_landed: datetime | None
    last_landed: datetime | None
    priorities: dict[str, PriorityDelivery]


class Delivery(msgspec.Struct, kw_only=True):
    """What ``fanout trace`` and ``GET /v1/activities/{id}/delivery`` answer."""

    id: str
    add: OpDelivery | None
    remove: OpDelivery | None


def delivery_report(activity_id: str, plans: Sequence[PlannedChunks], landed: Sequence[ChunkLanded]) -> Delivery:
    ops = {op: _op(op, plans, landed) for op in OPS}
    return Delivery(id=activity_id, add=ops["add"], remove=ops["remove"])


def _op(op: str, plans: Sequence[PlannedChunks], landed: Sequence[ChunkLanded]) -> OpDelivery | None:
    planned = {p.priority: p for p in plans if p.op == op}
    chunks = [c for c in landed if c.op == op]
    if not planned and not chunks:
        return None
    priorities: dict[str, PriorityDelivery] = {}
    for priority in PRIORITIES:
        plan = planned.get(priority)
        mine = [c for c in chunks if c.priority == priority]
        priorities[priority] = PriorityDelivery(
            chunks_planned=None if plan is None else plan.chunks,
            feeds_planned=None if plan is None else plan.feeds,
            chunks_written=len(mine),
            feeds_written=sum(c.feeds for c in mine),
        )
    complete = bool(planned) and all(
        d.chunks_planned is not None and d.chunks_written >= d.chunks_planned for d in priorities.values()
    )
    times = [c.at for c in chunks]
    return OpDelivery(
        planned=bool(planned),
        complete=complete,
        planned_at=from_micros(max(p.at for p in planned.values())) if planned else None,
        first_landed=from_micros(min(times)) if times else None,
        last_landed=from_micros(max(times)) if times else None,
        priorities=priorities,
    )


_Trace = tuple[dict[tuple[str, str], PlannedChunks], dict[tuple[str, str], ChunkLanded]]


class MemoryTraces:
    """The tracing part of ``Store`` in memory (a mixin of ``MemoryStore``): by activity id, the
    plans by (op, priority) and the landings by (op, chunk); a trace is dropped ``ttl_seconds``
    after its first record, as the Cassandra rows' TTL drops them (0: kept)."""

    clock: Callable[[], float]

    def __init__(self, ttl_seconds: float = DEFAULT_TRACE_TTL_SECONDS) -> None:
        self.trace_ttl_seconds = ttl_seconds
        self._traces: dict[str, _Trace] = {}
        self._expiring_traces: deque[tuple[float, str]] = deque()

    async def record_plan(self, plans: Sequence[PlannedChunks]) -> None:
        for plan in plans:
            self._trace(plan.activity_id)[0][plan.op, plan.priority] = plan

    async def record_landed(self, landed: Sequence[ChunkLanded]) -> None:
        for chunk in landed:
            self._trace(chunk.activity_id)[1][chunk.op, chunk.chunk] = chunk

    async def delivery(self, activity_id: str) -> tuple[list[PlannedChunks], list[ChunkLanded]]:
        self._expire_traces(self.clock())
        plans, landed = self._traces.get(activity_id, ({}, {}))
        return list(plans.values()), list(landed.values())

    def _trace(self, activity_id: str) -> _Trace:
        now = self.clock()
        self._expire_traces(now)
        trace = self._traces.get(activity_id)
        if trace is None:
            trace = self._traces[activity_id] = ({}, {})
            if self.trace_ttl_seconds:
                self._expiring_traces.append((now + self.trace_ttl_seconds, activity_id))
        return trace

    def _expire_traces(self, now: float) -> None:
        expiring = self._expiring_traces
        while expiring and expiring[0][0] <= now:
            self._traces.pop(expiring.popleft()[1], None)
