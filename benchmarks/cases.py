"""Cases that need no pipeline: 1 (Cassandra ceiling), 2 (eager, in memory), 6 (large account),
7 (Stream Framework baseline) and P (profiles of the eager path and the writer)."""

from __future__ import annotations

import asyncio
import cProfile
import gc
import io
import json
import os
import pstats
import resource
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

from fanout.codec import ActivityEvent, ChunkMessage
from fanout.core import Fanout
from fanout.memory import MemoryStore
from fanout.writer import TimelineWriter

from . import sfenv
from .common import (
    DAY_US,
    RESULTS,
    ROOT,
    Context,
    connect_store,
    edges_of,
    ensure_edges,
    events,
    load_memory_edges,
    median,
    rss_kib,
)
from .workload import Workload, activity_fields, standard, user_id

IN_FLIGHT = (32, 64, 128, 256)


def standard_workload(ctx: Context) -> Workload:
    if "workload" not in ctx.shared:
        ctx.shared["workload"] = standard(ctx.users, ctx.activities, t0_us=ctx.t0_us)
    wl: Workload = ctx.shared["workload"]
    return wl


def sf_workload(ctx: Context) -> Workload:
    """The prefix of the standard workload that case 7 runs (Stream Framework is slow)."""
    wl = standard_workload(ctx)
    acts, total = [], 0
    for act in wl.activities:
        if total >= ctx.sf_deliveries:
            break
        acts.append(act)
        total += len(wl.graph.followers.get(act.actor, [])) + 1
    return Workload(wl.graph, acts, wl.chunk_size)


def _window(ctx: Context) -> int:
    return int(ctx.settings.active_window_days * DAY_US)


def _row(name: str, runs: list[float], unit: str = "rows/s", **extra: Any) -> dict[str, Any]:
    return {"name": name, "unit": unit, "median": median(runs), "runs": runs, **extra}


# case 1 --------------------------------------------------------------------------------------
class _RawWriters:
    """``parts`` persistent ``benchmarks.raw_writer`` processes (the ceiling's client processes)."""

    def __init__(self, ctx: Context, keyspace: str, parts: int) -> None:
        self.ctx = ctx
        self.keyspace = keyspace
        self.parts = parts
        self.procs: list[Any] = []

    async def __aenter__(self) -> _RawWriters:
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", ""))
                                                            if p)}
        for _ in range(self.parts):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.raw_writer", self.keyspace, cwd=ROOT, env=env,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
            self.procs.append(proc)
        for proc in self.procs:
            await self._answer(proc, 120)
        return self

    async def _answer(self, proc: Any, limit_s: float) -> dict[str, Any]:
        line = await asyncio.wait_for(proc.stdout.readline(), limit_s)
        if not line:
            raise RuntimeError(f"raw writer {proc.pid} exited (code {await proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    async def run(self, wl: Workload, *, mode: str, concurrency: int, run: int, parts: int, limit: int = 0) -> float:
        """Rows/s of one pass written by ``parts`` processes together."""
        procs = self.procs[:parts]
        for i, proc in enumerate(procs):
            cmd = {"users": wl.graph.users, "activities": len(wl.activities), "t0_us": self.ctx.t0_us, "run": run,
                   "part": i, "parts": parts, "mode": mode, "concurrency": concurrency,
                   "limit": limit // parts if limit else 0}
            proc.stdin.write((json.dumps(cmd) + "\n").encode())
            await proc.stdin.drain()
        for proc in procs:
            await self._answer(proc, 300)
        for proc in procs:
            proc.stdin.write(b"go\n")
        await asyncio.gather(*(proc.stdin.drain() for proc in procs))
        done = [await self._answer(proc, 900) for proc in procs]
        return sum(d["rows"] for d in done) / (max(d["end"] for d in done) - min(d["start"] for d in done))

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.returncode is None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


async def case1(ctx: Context) -> dict[str, Any]:
    """The physical limit: raw timeline inserts with the driver, no fanout code in the way."""
    wl = standard_workload(ctx)
    ks = ctx.keyspace("ceiling")
    store = await connect_store(ctx.settings, ks)  # the same table (fanout's own DDL)
    await store.close()
    parts = ctx.high_writers + ctx.low_writers  # as many client processes as the pipeline has writers
    sweep_rows = 30_000 if not ctx.quick else 4_000
    small = 20_000 if not ctx.quick else 5_000
    rows_per_pass = wl.deliveries()
    sweep: dict[str, dict[int, float]] = {"single": {}, "grouped": {}}
    run = 1000
    ctx.log(f"case 1: in-flight sweep {IN_FLIGHT} per process, {parts} processes, {sweep_rows:,} rows each")
    finals: dict[str, list[float]] = {k: [] for k in ("single_n", "grouped_n", "single_1", "grouped_1")}
    async with _RawWriters(ctx, ks, parts) as writers:
        await writers.run(wl, mode="single", concurrency=64, run=run, parts=parts, limit=2000)  # warm-up
        for n in IN_FLIGHT:
            for mode in sweep:
                run += 1
                sweep[mode][n] = await writers.run(wl, mode=mode, concurrency=n, run=run, parts=parts,
                                                   limit=sweep_rows)
        best = {mode: max(rates, key=lambda k: rates[k]) for mode, rates in sweep.items()}
        ctx.log(f"case 1: sweep { {m: {k: round(v) for k, v in r.items()} for m, r in sweep.items()} }; best {best}")
        for _ in range(ctx.repeats):
            for key, mode, n_parts, limit in (("single_n", "single", parts, 0), ("grouped_n", "grouped", parts, 0),
                                              ("single_1", "single", 1, small), ("grouped_1", "grouped", 1, 0)):
                run += 1
                finals[key].append(await writers.run(wl, mode=mode, concurrency=best[mode], run=run,
                                                     parts=n_parts, limit=limit))
    ctx.log(f"case 1: {parts} processes: single {median(finals['single_n']):,.0f}/s, grouped "
            f"{median(finals['grouped_n']):,.0f}/s")
    # the same rows through fanout's own store (asyncio bridge, prepared statements, bounded in flight)
    from fanout.store import TimelineWrite

    store_runs: dict[str, list[float]] = {"concurrent": [], "partition_batch": []}
    for mode, runs in store_runs.items():
        s = await connect_store(ctx.settings.replace(max_in_flight=best["single"]), ks, migrate=False,
                                write_mode=mode)
        try:
            for _ in range(ctx.repeats):
                run += 1
                writes = []
                for act in wl.activities:
                    activity = _activity(act, run)
                    writes.extend(
                        TimelineWrite(f"timeline:{user_id(u)}", activity, activity.ts)
                        for u in wl.graph.followers.get(act.actor, [])
                    )
                    writes.append(TimelineWrite(f"user:{activity.actor}", activity, activity.ts))
                if mode == "concurrent":
                    writes = writes[:small]
                gc.collect()
                started = time.perf_counter()
                await s.apply(writes)
                runs.append(len(writes) / (time.perf_counter() - started))
        finally:
            await s.close()
    ctx.shared["ceiling"] = {"single": median(finals["single_n"]), "grouped": median(finals["grouped_n"]),
                             "processes": parts}
    return {
        "title": "Ceiling: raw Cassandra timeline inserts (same driver, node and table)",
        "inputs": {**wl.describe(), "rows_per_pass": rows_per_pass, "client_processes": parts,
                   "sweep_rows": sweep_rows, "in_flight_sweep": list(IN_FLIGHT),
                   "one_process_single_rows": small},
        "rows": [
            _row(f"raw single-row inserts, {parts} processes x {best['single']} in flight", finals["single_n"],
                 in_flight=best["single"]),
            _row(f"raw unlogged batch per partition, {parts} processes x {best['grouped']} in flight",
                 finals["grouped_n"], in_flight=best["grouped"]),
            _row(f"raw single-row inserts, 1 process x {best['single']} in flight", finals["single_1"]),
            _row(f"raw unlogged batch per partition, 1 process x {best['grouped']} in flight", finals["grouped_1"]),
            _row(f"fanout CassandraStore.apply concurrent, 1 process x {best['single']}", store_runs["concurrent"]),
            _row(f"fanout CassandraStore.apply partition_batch, 1 process x {best['single']}",
                 store_runs["partition_batch"]),
        ],
        "sweep": {mode: {str(k): v for k, v in rates.items()} for mode, rates in sweep.items()},
        "notes": [
            "Raw writes: cassandra.concurrent.execute_concurrent (the driver's fastest path), prepared "
            f"statements, {parts} client processes (as many as the pipeline's writers) each owning a share of "
            "the feeds, started together; grouped = a pass's rows grouped by feed partition, one UNLOGGED "
            "batch per partition (<= 50 statements / ~4 KiB).",
            "The pipeline's ratio to the ceiling uses the multi-process single-row and grouped rates.",
        ],
    }


def _activity(act: Any, run: int) -> Any:
    from fanout.activity import Activity

    f = activity_fields(act, run)
    return Activity(id=f["id"], actor=f["actor"], verb=f["verb"], object=f["object"], ts=f["ts_us"],
                    target=f["target"])


# case 2 --------------------------------------------------------------------------------------
async def _eager_pass(ctx: Context, wl: Workload, store: Any, run: int) -> tuple[int, float]:
    settings = ctx.settings.replace(chunk_size=wl.chunk_size)
    fanout = Fanout(store, settings)
    evs = events(wl.activities, run)
    accepted = ctx.t0_us
    gc.collect()
    started = time.perf_counter()
    deliveries = 0
    for event in evs:
        result = await fanout.handle_activity(event, accepted)
        deliveries += result.feeds + 1
    return deliveries, time.perf_counter() - started


async def case2(ctx: Context) -> dict[str, Any]:
    """Eager mode, in memory: the core alone, beside Stream Framework's in-memory feeds."""
    wl = standard_workload(ctx)
    repeats = max(ctx.repeats, 5)  # cheap, and short passes are noisy
    ours = []
    for run in range(repeats):
        store = MemoryStore()
        await load_memory_edges(store, edges_of(wl, ctx.t0_us, _window(ctx)), ctx.t0_us - 1)
        deliveries, secs = await _eager_pass(ctx, wl, store, run)
        assert deliveries == wl.deliveries(), (deliveries, wl.deliveries())
        ours.append(deliveries / secs)
        await store.close()
    ctx.log(f"case 2: ours {median(ours):,.0f} rows/s")
    rows = [_row("fanout eager, MemoryStore", ours)]
    notes = []
    try:
        sf = await sfenv.run_sf(ctx, wl, store="memory", repeats=repeats)
        sf_runs = [r["rate"] for r in sf["runs"]]
        rows.append(_row("Stream Framework 1.4.0 in-memory Feed, Celery eager", sf_runs))
        ctx.shared["sf_memory"] = median(sf_runs)
    except sfenv.Unavailable as exc:
        notes.append(f"Stream Framework could not run: {exc}")
    ratio = {"ours / Stream Framework": rows[0]["median"] / rows[1]["median"]} if len(rows) > 1 else {}
    return {
        "title": "Eager, in memory: deliveries per second through the core",
        "inputs": {**wl.describe(), "store": "fanout MemoryStore / SF stream_framework.feeds.memory.Feed",
                   "max_length": ctx.settings.max_length},
        "rows": rows,
        "ratios": ratio,
        "notes": [*notes, "Both sides: one process, every chunk written in-process before the next; "
                  "SF's fanout tasks run through Celery's eager apply()."],
    }


# case 6 --------------------------------------------------------------------------------------
class _CountingSink:
    """A planner's sink that only counts: the planning cost alone."""

    def __init__(self) -> None:
        self.chunks = 0
        self.feeds = 0

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks += 1
        self.feeds += len(chunk.feeds)


async def case6(ctx: Context) -> dict[str, Any]:
    """One activity of an account with 1,000,000 followers: time to complete, planner's peak memory."""
    n = 1_000_000 if not ctx.quick else 200_000
    store = MemoryStore()
    at = ctx.t0_us - 1
    active_until = ctx.t0_us + _window(ctx)
    rss0 = rss_kib()[0]
    started = time.perf_counter()
    for i in range(n):
        await store.set_follow(f"f{i}", "big", True, at, active_until if i % 5 == 0 else 0)
    load_s = time.perf_counter() - started
    graph_kib = rss_kib()[0] - rss0
    ctx.log(f"case 6: {n:,} followers loaded in {load_s:.1f}s (+{graph_kib / 1024:.0f} MiB RSS)")
    settings = ctx.settings

    def event(i: int) -> ActivityEvent:
        return ActivityEvent(actor="big", verb="post", object=f"big:{i}", id=f"big-{ctx.run_id}-{i}",
                             time=datetime.fromtimestamp((ctx.t0_us + i) / 1e6, UTC))

    plan_s, plan_peak, chunks = [], [], 0
    for i in range(ctx.repeats):
        sink = _CountingSink()
        fanout = Fanout(store, settings, sink=sink)
        gc.collect()
        started = time.perf_counter()
        await fanout.handle_activity(event(i), ctx.t0_us)
        plan_s.append(time.perf_counter() - started)
        chunks = sink.chunks
        assert sink.feeds == n, sink.feeds
    # planner memory: tracemalloc peak above the baseline while planning (graph excluded)
    sink = _CountingSink()
    fanout = Fanout(store, settings, sink=sink)
    gc.collect()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    await fanout.handle_activity(event(99), ctx.t0_us)
    plan_peak.append((tracemalloc.get_traced_memory()[1] - base) / 1024)
    tracemalloc.stop()
    ctx.log(f"case 6: planning {median(plan_s):.2f}s, {chunks:,} chunks, peak {plan_peak[0]:,.0f} KiB")

    # complete, eager in memory: every follower's timeline written
    complete_s = []
    for i in range(ctx.repeats if not ctx.quick else 1):
        await store.drop_timelines()
        fanout = Fanout(store, settings)
        gc.collect()
        started = time.perf_counter()
        result = await fanout.handle_activity(event(200 + i), ctx.t0_us)
        complete_s.append(time.perf_counter() - started)
        assert result.feeds == n
    ctx.log(f"case 6: eager complete {median(complete_s):.2f}s")
    rows = [
        _row("planning only (chunks counted, not sent)", plan_s, unit="s", chunks=chunks),
        _row("planner peak memory while planning (tracemalloc)", plan_peak, unit="KiB"),
        _row("complete, eager MemoryStore (1 activity -> every follower feed)", complete_s, unit="s"),
    ]
    await store.close()
    del store
    gc.collect()
    notes = []
    if ctx.shared.get("pipeline_ok", True):
        from . import pipeline as pl

        try:
            rows.extend(await pl.large_account(ctx, n, ctx.large_followers))
        except pl.Unavailable as exc:
            notes.append(f"pipeline part not run: {exc}")
    return {
        "title": f"Large account: one activity, {n:,} followers",
        "inputs": {"followers": n, "followers_via_cassandra": ctx.large_followers,
                   "high_share": "20% (every 5th follower active)", "activities": 1,
                   "chunk_size": settings.chunk_size, "graph_load_s": round(load_s, 1),
                   "graph_rss_mib": round(graph_kib / 1024)},
        "rows": rows,
        "notes": [
            *notes,
            "Planning streams the follower pages (1000 per page) through a Chunker holding one partial "
            "chunk per priority: its peak stays at pages + chunks, independent of the follower count.",
        ],
    }


# case 7 --------------------------------------------------------------------------------------
async def case7(ctx: Context) -> dict[str, Any]:
    """Stream Framework 1.4.0 on the same graph and activities, into the same Cassandra node."""
    wl = sf_workload(ctx)
    rows, notes, ratios = [], [], {}
    # ours, eager, Cassandra (the same shape of work as SF's eager mode: one chunk at a time)
    ks = ctx.keyspace("eager")
    store = await connect_store(ctx.settings, ks)
    await ensure_edges(ctx, store.session, ks, edges_of(wl, ctx.t0_us, _window(ctx)))
    ours = []
    for run in range(ctx.repeats):
        deliveries, secs = await _eager_pass(ctx, wl, store, 2000 + run)
        ours.append(deliveries / secs)
    await store.close()
    ctx.log(f"case 7: ours eager Cassandra {median(ours):,.0f} rows/s")
    rows.append(_row("fanout eager, CassandraStore", ours))
    try:
        sf = await sfenv.run_sf(ctx, wl, store="cassandra", repeats=ctx.repeats)
        sf_eager = [r["rate"] for r in sf["runs"]]
        rows.append(_row("Stream Framework eager (Celery always_eager), Cassandra", sf_eager))
        ratios["ours eager / SF eager (Cassandra)"] = median(ours) / median(sf_eager)
    except sfenv.Unavailable as exc:
        notes.append(f"Stream Framework (eager) could not run: {exc}")
    pipeline = ctx.shared.get("pipeline_on_sf_workload")
    if pipeline is None and ctx.shared.get("pipeline_ok", True):
        from . import pipeline as pl

        try:
            pipeline = await pl.run_on_workload(ctx, wl, "case 7")
        except pl.Unavailable as exc:
            notes.append(f"fanout pipeline could not run: {exc}")
    if pipeline:
        rows.append(_row("fanout pipeline (Kafka -> planner -> writers), Cassandra", pipeline))
    try:
        sf = await sfenv.run_sf(ctx, wl, store="cassandra", repeats=ctx.repeats, worker=True)
        sf_worker = [r["rate"] for r in sf["runs"]]
        rows.append(_row(f"Stream Framework, Celery worker (prefork x{sfenv.WORKER_CONCURRENCY}, Redis "
                         "broker), Cassandra", sf_worker))
        if pipeline:
            ratios["ours pipeline / SF Celery worker"] = median(pipeline) / median(sf_worker)
    except sfenv.Unavailable as exc:
        notes.append(f"Stream Framework (Celery worker) could not run: {exc}")
    return {
        "title": "Baseline: Stream Framework 1.4.0 on the same graph, activities and Cassandra node",
        "inputs": {**wl.describe(), "sf_table": "its own cqlengine table (feed_id ascii, activity_id "
                   "varint DESC) in its own keyspace on the same node"},
        "rows": rows,
        "ratios": ratios,
        "notes": [
            *notes,
            "SF writes each task's 100 rows as unprepared statements sent all at once, then waits; "
            "it trims a feed with probability 0.01 per add (a read and a partition delete).",
        ],
    }


# profile -------------------------------------------------------------------------------------
def _top(profile: cProfile.Profile, limit: int = 25) -> tuple[str, list[dict[str, Any]]]:
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.sort_stats("tottime").print_stats(limit)
    total = stats.total_tt  # type: ignore[attr-defined]
    top = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in sorted(
        stats.stats.items(), key=lambda item: item[1][2], reverse=True  # type: ignore[attr-defined]
    )[:12]:
        short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
        top.append({"function": f"{short}:{line}({name})", "calls": nc, "tottime_s": round(tt, 3),
                    "share": round(tt / total, 3) if total else 0, "cumtime_s": round(ct, 3)})
    return out.getvalue(), top


async def case_profile(ctx: Context) -> dict[str, Any]:
    """cProfile of the eager path (memory and Cassandra) and of the writer's batch."""
    wl = standard_workload(ctx)
    texts, sections = [], {}

    async def profiled(label: str, coro_fn: Any) -> None:
        prof = cProfile.Profile()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        thread0 = time.thread_time()
        wall0 = time.perf_counter()
        prof.enable()
        await coro_fn()
        prof.disable()
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        process_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        text, top = _top(prof)
        texts.append(f"==== {label} ====\nwall {wall:.2f}s, process CPU {process_cpu:.2f}s, "
                     f"main-thread CPU {time.thread_time() - thread0:.2f}s\n{text}")
        sections[label] = {"wall_s": round(wall, 2), "process_cpu_s": round(process_cpu, 2),
                           "main_thread_cpu_s": round(time.thread_time() - thread0, 2), "top": top}

    store = MemoryStore()
    await load_memory_edges(store, edges_of(wl, ctx.t0_us, _window(ctx)), ctx.t0_us - 1)
    await profiled("eager path, MemoryStore", lambda: _eager_pass(ctx, wl, store, 3000))

    ks = ctx.keyspace("eager")
    cstore = await connect_store(ctx.settings, ks)
    small = sf_workload(ctx)
    await ensure_edges(ctx, cstore.session, ks, edges_of(small, ctx.t0_us, _window(ctx)))
    await profiled("eager path, CassandraStore", lambda: _eager_pass(ctx, small, cstore, 3001))

    # the writer: one agent batch (up to batch_max_records chunks) through TimelineWriter
    fanout_plan = Fanout(MemoryStore(), ctx.settings, sink=None)
    chunks: list[ChunkMessage] = []

    class _Collect:
        async def send(self, chunk: ChunkMessage) -> None:
            chunks.append(chunk)

    await load_memory_edges(fanout_plan.store, edges_of(wl, ctx.t0_us, _window(ctx)), ctx.t0_us - 1)
    fanout_plan.sink = _Collect()
    for event in events(wl.activities, 3002):
        await fanout_plan.handle_activity(event, ctx.t0_us)
    batch = chunks[: ctx.settings.batch_max_records]
    writer = TimelineWriter(cstore, max_length=ctx.settings.max_length, trim_every=ctx.settings.trim_every)
    await profiled(f"writer batch: {len(batch)} chunks, {sum(len(c.feeds) for c in batch):,} rows, "
                   "CassandraStore concurrent", lambda: writer.write_chunks(batch))
    await cstore.close()
    path = RESULTS / f"{ctx.shared['stamp']}-profile.txt"
    path.write_text("\n\n".join(texts))
    return {"title": "Profiles: where the time goes (cProfile, main thread)", "inputs": {**wl.describe()},
            "rows": [], "profile": sections, "profile_file": str(path.name),
            "notes": ["cProfile sees the main thread only; the driver's I/O thread (response decoding, "
                      "callbacks) shows up as process CPU minus main-thread CPU."]}


def worker_profiles(ctx: Context) -> dict[str, Any]:
    """Summaries of the pipeline workers' cProfile files (``--profile-workers``), by role."""
    out: dict[str, Any] = {}
    texts = []
    for path in sorted((ctx.work / "workers").glob("*.prof")):
        role = path.stem.rsplit(".", 1)[-1]
        try:
            stats = pstats.Stats(str(path))
        except (OSError, EOFError, TypeError):
            continue
        prof_text = io.StringIO()
        pstats.Stats(str(path), stream=prof_text).sort_stats("tottime").print_stats(20)
        texts.append(f"==== {role} ({path.name}) ====\n{prof_text.getvalue()}")
        total = stats.total_tt  # type: ignore[attr-defined]
        top = []
        for (filename, line, name), (_cc, nc, tt, ct, _callers) in sorted(
            stats.stats.items(), key=lambda item: item[1][2], reverse=True  # type: ignore[attr-defined]
        )[:12]:
            short = filename.split("site-packages/")[-1].split("/work/main/")[-1]
            top.append({"function": f"{short}:{line}({name})", "calls": nc, "tottime_s": round(tt, 3),
                        "share": round(tt / total, 3) if total else 0, "cumtime_s": round(ct, 3)})
        out[role] = {"total_s": round(total, 2), "top": top}
    if texts:
        (RESULTS / f"{ctx.shared['stamp']}-worker-profile.txt").write_text("\n\n".join(texts))
    return out
