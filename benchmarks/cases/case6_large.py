"""Case 6, a large account: one activity of an account with 1,000,000 followers.

In memory: planning alone (chunks counted) and its tracemalloc peak, then the eager completion.
From Cassandra: planning 100k and 1M followers page by page in a process of its own
(``case6_plan_probe``). Through the pipeline: an account with ``--large-followers`` followers (time
until planned, until every row is committed, the planner's RSS growth sampled every 20 ms).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness.context import ROOT, Context
from benchmarks.harness.eager import CountingSink
from benchmarks.harness.errors import PipelineUnavailable
from benchmarks.harness.inputs import Edge
from benchmarks.harness.memory import PeakRss, rss_kib, traced
from benchmarks.harness.pipeline import session
from benchmarks.harness.processes import child_env
from benchmarks.harness.stats import median, row, single
from fanout import ActivityEvent, Fanout, MemoryStore


async def run(ctx: Context) -> dict[str, Any]:
    """One activity of an account with 1,000,000 followers: time to complete, planner's peak memory."""
    n = 1_000_000 if not ctx.quick else 200_000
    rows, load_s, graph_kib = await in_memory(ctx, n)
    notes = []
    if ctx.pipeline_ok:
        try:
            rows.extend(await through_cassandra(ctx, n, ctx.large_followers))
        except PipelineUnavailable as exc:
            notes.append(f"pipeline part not run: {exc}")
    return {
        "title": f"Large account: one activity, {n:,} followers",
        "inputs": {"followers": n, "followers_via_cassandra": ctx.large_followers,
                   "high_share": "20% (every 5th follower active)", "activities": 1,
                   "chunk_size": ctx.settings.chunk_size, "graph_load_s": round(load_s, 1),
                   "graph_rss_mib": round(graph_kib / 1024)},
        "rows": rows,
        "notes": [
            *notes,
            "Planning streams the follower pages (1000 per page) through a Chunker holding one partial "
            "chunk per priority: its peak stays at pages + chunks, independent of the follower count.",
        ],
    }


async def in_memory(ctx: Context, n: int) -> tuple[list[dict[str, Any]], float, int]:
    """(rows, seconds to load the graph, its RSS in KiB) of the account on a ``MemoryStore``."""
    store = MemoryStore()
    at = ctx.t0_us - 1
    active_until = ctx.t0_us + ctx.active_window_us
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

    plan_s, chunks = [], 0
    for i in range(ctx.repeats):
        sink = CountingSink()
        fanout = Fanout(store, settings, sink=sink)
        gc.collect()
        started = time.perf_counter()
        await fanout.handle_activity(event(i), ctx.t0_us)
        plan_s.append(time.perf_counter() - started)
        chunks = sink.chunks
        assert sink.feeds == n, sink.feeds
    # planner memory: tracemalloc peak above the baseline while planning (graph excluded)
    fanout = Fanout(store, settings, sink=CountingSink())
    gc.collect()
    _, _, peak = await traced(fanout.handle_activity(event(99), ctx.t0_us))
    plan_peak = [peak / 1024]
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
    await store.close()
    del store
    gc.collect()
    rows = [
        row("planning only (chunks counted, not sent)", plan_s, unit="s", chunks=chunks),
        row("planner peak memory while planning (tracemalloc)", plan_peak, unit="KiB"),
        row("complete, eager MemoryStore (1 activity -> every follower feed)", complete_s, unit="s"),
    ]
    return rows, load_s, graph_kib


async def plan_probe(keyspace: str, actor: str, followers: int) -> dict[str, float]:
    """``case6_plan_probe``'s measurements of planning ``actor`` from Cassandra, in its own process."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.cases.case6_plan_probe", keyspace, actor, str(followers), cwd=ROOT,
        env=child_env({"FANOUT_PULL_THRESHOLD": "0"}), stdout=asyncio.subprocess.PIPE,  # pushed, as in run.py
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 900)
    if proc.returncode != 0:
        raise PipelineUnavailable(f"plan_probe {actor} failed (exit {proc.returncode})")
    measured: dict[str, float] = json.loads(out.decode().strip().splitlines()[-1])
    return measured


async def through_cassandra(ctx: Context, plan_followers: int, pipe_followers: int) -> list[dict[str, Any]]:
    """Rows of case 6 on the real path: planning by pages from Cassandra (``plan_followers`` and a
    tenth of it), and one activity of an account with ``pipe_followers`` followers through the
    pipeline (time until planned, time to complete, planner RSS growth)."""
    sess = await session(ctx, 100)
    window = ctx.active_window_us
    now = int(time.time() * 1e6)
    small = max(1_000, plan_followers // 10)

    def edges(actor: str, n: int) -> list[Edge]:
        return [(actor, f"b{i}", now + window if i % 5 == 0 else 0) for i in range(n)]

    await sess.ensure_edges(edges("bigc", plan_followers) + edges("midc", small) + edges("pipec", pipe_followers))
    sizes = (("midc", small), ("bigc", plan_followers))
    plan = {actor: await plan_probe(sess.keyspace, actor, n) for actor, n in sizes}
    for actor, n in sizes:
        p = plan[actor]
        ctx.log(f"case 6: planning {n:,} followers from Cassandra: {p['seconds']:.2f}s, RSS +"
                f"{p['rss_growth_kib']:,.0f} KiB, tracemalloc peak {p['tracemalloc_peak_kib']:,.0f} KiB")

    event = ActivityEvent(actor="pipec", verb="post", object="pipec:pipeline", id=f"pipec-{ctx.run_id}-pipeline",
                          time=datetime.now(UTC))
    async with PeakRss(sess.workers.planner_pid, interval=0.02) as rss:
        result = await sess.run_pass([event], "large account", limit_s=max(300.0, pipe_followers / 200))
    ctx.log(f"case 6: pipeline: planned in {result.extra['planned_s']:.1f}s, {result.deliveries:,} rows complete "
            f"in {result.seconds:.1f}s; planner RSS {rss.before / 1024:.0f} -> peak {rss.peak / 1024:.0f} MiB")
    rows = []
    for actor, n in sizes:
        p = plan[actor]
        rows += [
            single(f"planning {n:,} followers from Cassandra (pages of 1000)", p["seconds"], "s"),
            single(f"planner memory, {n:,} followers from Cassandra: RSS growth", p["rss_growth_kib"], "KiB"),
            single(f"planner memory, {n:,} followers from Cassandra: tracemalloc peak", p["tracemalloc_peak_kib"],
                   "KiB"),
        ]
    return [
        *rows,
        single(f"pipeline, {pipe_followers:,} followers: planned (planner committed)", result.extra["planned_s"], "s"),
        single(f"pipeline, {pipe_followers:,} followers: complete (every row committed)", result.seconds, "s",
               deliveries=result.deliveries),
        single("planner process RSS growth during it (sampled every 20 ms)", float(rss.growth), "KiB",
               rss_before_kib=rss.before),
    ]
