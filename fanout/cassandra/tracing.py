"""Delivery tracing on Cassandra: the ``delivery_plans`` and ``delivery_chunks`` tables.

A plan is one row per (activity, op, priority) and a landed chunk one row per (activity, op,
chunk's first feed), so a repeated write (a re-plan, a re-delivered chunk) overwrites its row and
counts once. The rows of one activity go as one UNLOGGED single-partition batch (one request).
Rows expire after ``FANOUT_TRACE_TTL_SECONDS`` (bound). ``CassandraStore`` inherits these methods;
the statements are prepared on first use.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from ..tracing import ChunkLanded, PlannedChunks
from .batching import BATCH_MAX_STATEMENTS
from .bridge import DriverBridge
from .routing import consistency_level
from .statements import idempotent, prepare_all


class _Statements:
    def __init__(self, prepare: Any, ks: str) -> None:
        def p(cql: str) -> Any:
            return idempotent(prepare, cql)

        self.plan = p(f"INSERT INTO {ks}.delivery_plans (activity_id, op, priority, chunks, feeds, planned_at) "
                      "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?")
        self.landed = p(f"INSERT INTO {ks}.delivery_chunks (activity_id, op, chunk, priority, feeds, landed) "
                        "VALUES (?, ?, ?, ?, ?, ?) USING TTL ?")
        self.plans = p(f"SELECT op, priority, chunks, feeds, planned_at FROM {ks}.delivery_plans "
                       "WHERE activity_id = ?")
        self.chunks = p(f"SELECT op, chunk, priority, feeds, landed FROM {ks}.delivery_chunks WHERE activity_id = ?")


class DeliveryTables:
    """The ``Store`` tracing methods of ``CassandraStore`` (a mixin: it brings the bridge and keyspace)."""

    _bridge: DriverBridge
    keyspace: str
    session: Any
    settings: Any
    _trace_stmts: _Statements | None = None

    async def record_plan(self, plans: Sequence[PlannedChunks]) -> None:
        s = await self._trace_statements()
        ttl = self.settings.trace_ttl_seconds
        rows = [(p.activity_id, s.plan.bind((p.activity_id, p.op, p.priority, p.chunks, p.feeds, p.at, ttl)))
                for p in plans]
        await self._bridge.run_all(_per_partition(rows), "record_plan")

    async def record_landed(self, landed: Sequence[ChunkLanded]) -> None:
        s = await self._trace_statements()
        ttl = self.settings.trace_ttl_seconds
        rows = [(c.activity_id, s.landed.bind((c.activity_id, c.op, c.chunk, c.priority, c.feeds, c.at, ttl)))
                for c in landed]
        await self._bridge.run_all(_per_partition(rows), "record_landed")

    async def delivery(self, activity_id: str) -> tuple[list[PlannedChunks], list[ChunkLanded]]:
        s = await self._trace_statements()
        plans, chunks = await asyncio.gather(
            self._bridge.fetch_all(s.plans.bind((activity_id,)), "delivery"),
            self._bridge.fetch_all(s.chunks.bind((activity_id,)), "delivery"),
        )
        return (
            [PlannedChunks(activity_id, op, pr, n, f, at) for op, pr, n, f, at in plans],
            [ChunkLanded(activity_id, op, chunk, pr, f, at) for op, chunk, pr, f, at in chunks],
        )

    async def _trace_statements(self) -> _Statements:
        if self._trace_stmts is None:
            self._trace_stmts = await prepare_all(
                _Statements, self.session, self.keyspace, "tracing", consistency_level(self.settings.read_consistency)
            )
        return self._trace_stmts


def _per_partition(rows: Sequence[tuple[str, Any]]) -> list[Any]:
    """One request per activity: its rows as an UNLOGGED single-partition batch (one mutation), a
    lone row as itself. A writer batch of many chunks of one activity costs one request."""
    from cassandra.query import BatchStatement, BatchType

    groups: dict[str, list[Any]] = {}
    for activity_id, bound in rows:
        groups.setdefault(activity_id, []).append(bound)
    requests: list[Any] = []
    for group in groups.values():
        for start in range(0, len(group), BATCH_MAX_STATEMENTS):
            part = group[start : start + BATCH_MAX_STATEMENTS]
            if len(part) == 1:
                requests.append(part[0])
                continue
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for bound in part:
                batch.add(bound)
            batch.is_idempotent = True
            requests.append(batch)
    return requests
