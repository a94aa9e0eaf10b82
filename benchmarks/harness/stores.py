"""Stores of a run: Cassandra keyspaces (connect, drop) and follow graphs loaded into them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Sequence
from functools import partial
from typing import Any

from fanout import CassandraStore, Settings, Store

from .context import Context
from .inputs import Edge

EDGE_BATCH = 100  # follow rows per UNLOGGED batch, as the store writes them


async def connect_store(settings: Settings, keyspace: str, *, migrate: bool = True,
                        write_mode: str | None = None) -> CassandraStore:
    """fanout's own Cassandra store on ``keyspace`` (created with fanout's DDL when ``migrate``)."""
    store = await CassandraStore.connect(settings, keyspace=keyspace, write_mode=write_mode)
    if migrate:
        await store.migrate()
    return store


async def wait_for_cassandra(settings: Settings, within: float = 300.0) -> float:
    """Connect until the node takes a driver session (a fresh node on a loaded machine answers its
    readiness probe well before the driver's schema queries); seconds waited."""
    from fanout.retry import retry

    started = time.monotonic()
    store = await retry(partial(CassandraStore.connect, settings), within=within, first_delay=1.0, max_delay=10.0)
    await store.close()
    return time.monotonic() - started


async def drop_keyspaces(settings: Settings, names: Sequence[str]) -> None:
    for name in names:
        with contextlib.suppress(Exception):
            store = await CassandraStore.connect(settings, keyspace=name)
            try:
                await store.drop_keyspace()
            finally:
                await store.close()


async def load_memory_edges(store: Store, edges: Iterable[Edge], at: int) -> int:
    n = 0
    for followee, follower, until in edges:
        await store.set_follow(follower, followee, True, at, until)
        n += 1
    return n


def load_cassandra_edges(session: Any, keyspace: str, edges: Sequence[Edge], concurrency: int = 32) -> float:
    """Bulk-load follow edges into ``followers`` (the table the planner pages), as the store writes
    them: one UNLOGGED batch of up to 100 rows per followee partition, concurrently. Returns seconds."""
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

    stmt = session.prepare(
        f"INSERT INTO {keyspace}.followers (followee, follower, following, active_until) VALUES (?, ?, true, ?)"
    )
    by_followee: dict[str, list[Edge]] = {}
    for edge in edges:
        by_followee.setdefault(edge[0], []).append(edge)
    started = time.perf_counter()
    requests: list[tuple[Any, Any]] = []

    def flush() -> None:
        for result in execute_concurrent(session, requests, concurrency=concurrency, raise_on_first_error=True):
            if not result.success:
                raise RuntimeError(result.result_or_exc)
        requests.clear()

    for rows in by_followee.values():
        for start in range(0, len(rows), EDGE_BATCH):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for followee, follower, until in rows[start : start + EDGE_BATCH]:
                batch.add(stmt, (followee, follower, until or UNSET_VALUE))  # unset: no null cell
            requests.append((batch, None))
            if len(requests) >= 2000:
                flush()
    flush()
    return time.perf_counter() - started


async def ensure_edges(ctx: Context, store: CassandraStore, edges: Sequence[Edge]) -> None:
    """Load the edges of followees not loaded into ``store``'s keyspace yet (each keyspace loads a
    graph once)."""
    keyspace = store.keyspace
    loaded: set[str] = ctx.shared.setdefault(f"loaded:{keyspace}", set())
    todo = [e for e in edges if e[0] not in loaded]
    if not todo:
        return
    secs = await asyncio.to_thread(load_cassandra_edges, store.session, keyspace, todo)
    loaded.update(e[0] for e in todo)
    ctx.log(f"loaded {len(todo):,} follow edges into {keyspace} in {secs:.1f}s ({len(todo) / secs:,.0f}/s)")
