"""Shared plumbing of the benchmark cases: the run context, statistics, graph loading, cleanup."""

from __future__ import annotations

import contextlib
import math
import os
import statistics
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from fanout.activity import now_micros
from fanout.codec import ActivityEvent
from fanout.settings import Settings

from .workload import Act, Workload, activity_fields, user_id

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"
RESULTS = BENCH_DIR / "results"
DAY_US = 86_400 * 1_000_000


@dataclass
class Context:
    """What every case gets: settings, sizes, where to write, and what to clean up."""

    quick: bool
    repeats: int
    console: Console
    settings: Settings
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%m%d%H%M%S") + uuid.uuid4().hex[:4])
    high_writers: int = 2
    low_writers: int = 1
    large: int = 0  # followers of case 6's account through Cassandra and the pipeline (0: default)
    keep: bool = False
    profile_workers: bool = False  # run the pipeline's workers under cProfile
    keyspaces: list[str] = field(default_factory=list)  # created by this run: dropped at the end
    topic_prefixes: list[str] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)  # results one case hands to another
    t0_us: int = field(default_factory=lambda: now_micros() - 3_600_000_000)

    @property
    def work(self) -> Path:
        path = WORK / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def keyspace(self, name: str) -> str:
        ks = f"bench_{self.run_id}_{name}"
        if ks not in self.keyspaces:
            self.keyspaces.append(ks)
        return ks

    def log(self, message: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")

    # sizes ---------------------------------------------------------------------------------
    @property
    def users(self) -> int:
        return 10_000 if not self.quick else 5_000

    @property
    def activities(self) -> int:
        """The standard workload: about 60k deliveries (quick: about 12k)."""
        return 24 if not self.quick else 10

    @property
    def large_followers(self) -> int:
        return self.large or (200_000 if not self.quick else 20_000)

    @property
    def sf_deliveries(self) -> int:
        """Case 7 runs a prefix of the standard workload worth this many deliveries."""
        return 20_000 if not self.quick else 5_000


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile of unsorted ``values`` (NaN when empty)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return float(ordered[rank - 1])


def weighted_percentiles(samples: Iterable[tuple[float, int]], pcts: Sequence[float]) -> list[float]:
    """Percentiles of values each counted ``weight`` times (a chunk's latency per follower)."""
    pairs = sorted(samples)
    total = sum(w for _, w in pairs)
    if total == 0:
        return [math.nan for _ in pcts]
    out = []
    for pct in pcts:
        target = max(1, math.ceil(pct / 100 * total))
        seen = 0
        for value, weight in pairs:
            seen += weight
            if seen >= target:
                out.append(value)
                break
    return out


def events(acts: Sequence[Act], run: int) -> list[ActivityEvent]:
    """fanout activity events of a pass (ids unique per pass, times from the workload)."""
    out = []
    for act in acts:
        f = activity_fields(act, run)
        out.append(
            ActivityEvent(
                actor=f["actor"], verb=f["verb"], object=f["object"], target=f["target"], id=f["id"],
                time=datetime.fromtimestamp(f["ts_us"] / 1e6, UTC),
            )
        )
    return out


def edges_of(workload: Workload, now_us: int, window_us: int) -> list[tuple[str, str, int]]:
    """(followee, follower, active_until) of every edge into a posting actor."""
    rows = []
    for actor in workload.actors:
        for follower in workload.graph.followers.get(actor, []):
            until = now_us + window_us if follower in workload.graph.active else 0
            rows.append((user_id(actor), user_id(follower), until))
    return rows


async def load_memory_edges(store: Any, edges: Iterable[tuple[str, str, int]], at: int) -> int:
    n = 0
    for followee, follower, until in edges:
        await store.set_follow(follower, followee, True, at, until)
        n += 1
    return n


def load_cassandra_edges(session: Any, keyspace: str, edges: Sequence[tuple[str, str, int]],
                         concurrency: int = 32) -> float:
    """Bulk-load follow edges into ``followers`` (the table the planner pages), as the store writes
    them: one UNLOGGED batch of up to 100 rows per followee partition, concurrently. Returns seconds."""
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import UNSET_VALUE, BatchStatement, BatchType

    stmt = session.prepare(
        f"INSERT INTO {keyspace}.followers (followee, follower, following, active_until) VALUES (?, ?, true, ?)"
    )
    by_followee: dict[str, list[tuple[str, str, int]]] = {}
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
        for start in range(0, len(rows), 100):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for followee, follower, until in rows[start : start + 100]:
                batch.add(stmt, (followee, follower, until or UNSET_VALUE))  # unset: no null cell
            requests.append((batch, None))
            if len(requests) >= 2000:
                flush()
    flush()
    return time.perf_counter() - started


async def ensure_edges(ctx: Context, session: Any, keyspace: str, edges: Sequence[tuple[str, str, int]]) -> None:
    """Load the edges of followees not loaded into ``keyspace`` yet (each keyspace loads a graph once)."""
    import asyncio

    loaded: set[str] = ctx.shared.setdefault(f"loaded:{keyspace}", set())
    todo = [e for e in edges if e[0] not in loaded]
    if not todo:
        return
    secs = await asyncio.to_thread(load_cassandra_edges, session, keyspace, todo)
    loaded.update(e[0] for e in todo)
    ctx.log(f"loaded {len(todo):,} follow edges into {keyspace} in {secs:.1f}s ({len(todo) / secs:,.0f}/s)")


async def connect_store(settings: Settings, keyspace: str, *, migrate: bool = True, **kwargs: Any) -> Any:
    from fanout.cassandra import CassandraStore

    store = await CassandraStore.connect(settings, keyspace=keyspace, **kwargs)
    if migrate:
        await store.migrate()
    return store


async def drop_keyspaces(settings: Settings, names: Sequence[str]) -> None:
    if not names:
        return
    from fanout.cassandra import CassandraStore

    for name in names:
        with contextlib.suppress(Exception):
            store = await CassandraStore.connect(settings, keyspace=name)
            try:
                await store.drop_keyspace()
            finally:
                await store.close()


def rss_kib(pid: int | None = None) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB of a process (default: this one), from /proc."""
    path = f"/proc/{pid or os.getpid()}/status"
    cur = peak = 0
    with contextlib.suppress(OSError), open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return cur, peak


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid or os.getpid()}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_pids() -> dict[str, int]:
    """Pids of the local Kafka and Cassandra (``scripts/services.sh`` writes them)."""
    out = {}
    for name in ("cassandra", "kafka"):
        with contextlib.suppress(OSError, ValueError):
            out[name] = int((ROOT / ".local" / name / "pid").read_text().split()[0])
    return out
