"""Case 4, priority isolation: HIGH latency while a LOW backlog drains, against HIGH latency on the
idle pipeline. A probe is one activity of an account with 250 HIGH followers (3 chunks); probes go
out open loop, one every ``PROBE_EVERY_S`` whether or not the last has landed (the same rate idle and
busy, so both phases carry the same HIGH load); the backlog is posts of accounts whose followers are
all inactive (LOW only)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness.context import Context
from benchmarks.harness.pipeline import Sent, Session, session
from benchmarks.harness.stats import median, row
from benchmarks.harness.tracking import ChunkRec, PassResult, named_pcts, pooled_samples
from fanout import ActivityEvent

PROBE_FOLLOWERS = 250  # 3 HIGH chunks per probe
MAX_BUSY_PROBES = 400
PROBE_EVERY_S = 0.5  # open loop, slower than an idle probe lands (p99 0.2-0.5 s): idle probes seldom overlap


def low_backlog(sess: Session, bulk_sent: Sent) -> int:
    """LOW rows of the backlog not committed by the low writers yet."""
    low_group = sess.groups["low"]
    low_topic = sess.settings.topic("low")
    left = 0
    for c in sess.chunks:
        if c.topic == low_topic and c.activity_id in bulk_sent and \
                sess.committed_at(low_group, c.topic, c.partition, c.offset) is None:
            left += c.feeds
    return left


def high_series(busy: list[PassResult], backlog_at_probe: list[int], t_bulk: float) -> list[list[float]]:
    """[probe sent (s since the backlog), HIGH chunk latency, feeds, LOW rows left then] per chunk."""
    out = []
    for r, backlog in zip(busy, backlog_at_probe, strict=True):
        t_rel = r.extra["t0"] - t_bulk
        for p, lat, n, _ in r.latencies:
            if p == "high":
                out.append([round(t_rel, 3), round(lat, 3), n, backlog])
    return out


def drain_series(done: list[tuple[ChunkRec, float]], low_rows: int, t_bulk: float) -> list[list[float]]:
    """[s since the backlog was produced, LOW rows of it left] at each of its chunks' commits."""
    out, left = [], low_rows
    for chunk, t in sorted(done, key=lambda ct: ct[1]):
        left -= chunk.feeds
        out.append([round(t - t_bulk, 3), left])
    return out


async def probes(sess: Session, make: Callable[[int], ActivityEvent], first: int, count: int,
                 until: Callable[[], bool], label: str) -> list[PassResult]:
    """Send a probe every ``PROBE_EVERY_S`` (numbered from ``first``) until ``until()`` or ``count``
    probes; wait for all of them. Closed loop (one at a time) gave 6-14 probes per drain: its p99 was
    the maximum, and the busy/idle ratio moved 1.3x-7.5x between runs of one configuration."""
    tasks: list[asyncio.Task[PassResult]] = []
    while len(tasks) < count and not until():
        tasks.append(asyncio.create_task(sess.run_pass([make(first + len(tasks))], label, limit_s=120)))
        await asyncio.sleep(PROBE_EVERY_S)
    return list(await asyncio.gather(*tasks))


async def episode(ctx: Context, sess: Session, rep: int, n_idle: int, bulk: list[ActivityEvent],
                  low_rows: int) -> dict[str, Any]:
    """One run: HIGH probes on the idle pipeline, then while a LOW backlog drains."""

    def probe(i: int) -> ActivityEvent:
        return ActivityEvent(actor="probe", verb="probe", object=f"probe:{rep}:{i}",
                             id=f"probe-{ctx.run_id}-{rep}-{i}", time=datetime.now(UTC))

    idle = await probes(sess, probe, 0, n_idle, lambda: False, "idle probe")
    t_bulk = time.perf_counter()
    bulk_sent = await sess.produce(bulk)
    # wait until the planner has planned the backlog (the low topic holds it), then probe while it drains
    await sess.wait_planned(bulk_sent, limit_s=max(300.0, low_rows / 300))
    planned_s = time.perf_counter() - t_bulk
    backlog_at_probe: list[int] = []

    def drained() -> bool:
        backlog_at_probe.append(low_backlog(sess, bulk_sent))
        return backlog_at_probe[-1] == 0

    busy = await probes(sess, probe, n_idle, MAX_BUSY_PROBES, drained, "busy probe")
    backlog_at_probe = backlog_at_probe[: len(busy)]
    bulk_done, _ = await sess.wait_done(bulk_sent, limit_s=max(300.0, low_rows / 300))
    drain_s = max(t for _, t in bulk_done) - t_bulk
    idle_p = named_pcts(pooled_samples(idle, "high"))
    busy_p = named_pcts(pooled_samples(busy, "high"))
    ctx.log(f"case 4: run {rep + 1}: HIGH p99 idle {idle_p['p99']:.3f}s, while {low_rows:,} LOW rows drain "
            f"{busy_p['p99']:.3f}s over {len(busy)} probes; drained in {drain_s:.1f}s")
    return {
        "idle": idle_p, "busy": busy_p, "busy_probes": len(busy), "planned_s": planned_s,
        # the planner's share of the slowest probe (its HIGH chunks produced, from the probe sent)
        "planning_idle": max(r.extra["high_planned_pcts"][2] for r in idle),
        "planning_busy": max(r.extra["high_planned_pcts"][2] for r in busy),
        "drain_rate": low_rows / drain_s if drain_s else 0.0,
        "ratio": busy_p["p99"] / idle_p["p99"] if idle_p["p99"] else float("nan"),
        "series": {
            "case4_idle": [[k, round(lat, 3), n] for k, r in enumerate(idle) for p, lat, n, _ in r.latencies
                           if p == "high"],
            "case4_busy": high_series(busy, backlog_at_probe, t_bulk),
            "case4_low_drain": drain_series(bulk_done, low_rows, t_bulk),
        },
    }


async def run(ctx: Context) -> dict[str, Any]:
    """Priority isolation: HIGH latency while a LOW backlog of >= 100k rows drains, per run."""
    sess = await session(ctx, 100)
    now = ctx.t0_us
    bulk_actors, bulk_followers, bulk_posts = (4, 10_000, 3) if not ctx.quick else (4, 5_000, 5)  # >= 100k LOW rows
    edges = [("probe", f"ph{i}", now + ctx.active_window_us) for i in range(PROBE_FOLLOWERS)]
    edges += [(f"bulk{b}", f"ql{i}", 0) for b in range(bulk_actors) for i in range(bulk_followers)]
    await sess.ensure_edges(edges)
    low_rows = bulk_actors * bulk_followers * bulk_posts
    n_idle = 40 if not ctx.quick else 20
    runs = []
    for rep in range(ctx.repeats):
        # the LOW backlog: every bulk follower is inactive, so each post fans out on the low topic only
        bulk = [ActivityEvent(actor=f"bulk{b}", verb="post", object=f"bulk:{rep}:{b}:{k}",
                              id=f"bulk-{ctx.run_id}-{rep}-{b}-{k}", time=datetime.now(UTC))
                for k in range(bulk_posts) for b in range(bulk_actors)]
        runs.append(await episode(ctx, sess, rep, n_idle, bulk, low_rows))
    mid = sorted(runs, key=lambda r: r["ratio"])[len(runs) // 2]
    return {
        "title": "Priority isolation: HIGH latency while a LOW backlog drains",
        "inputs": {"probe": f"1 activity of an account with {PROBE_FOLLOWERS} HIGH followers (3 chunks)",
                   "low_backlog": f"{len(bulk)} activities of {bulk_actors} accounts with {bulk_followers:,} LOW "
                                  f"followers each = {low_rows:,} LOW rows",
                   "idle_probes_per_run": n_idle, "probe_every_s": PROBE_EVERY_S,
                   "busy_probes": [r["busy_probes"] for r in runs],
                   "chunk_size": 100,
                   "workers": f"1 planner, {ctx.high_writers} high writers, {ctx.low_writers} low writers",
                   "backlog_planned_s": [round(r["planned_s"], 2) for r in runs]},
        "rows": [
            row("HIGH p50, idle system", [r["idle"]["p50"] for r in runs], "s"),
            row("HIGH p99, idle system", [r["idle"]["p99"] for r in runs], "s"),
            row("HIGH p50, while the LOW backlog drains", [r["busy"]["p50"] for r in runs], "s"),
            row("HIGH p99, while the LOW backlog drains", [r["busy"]["p99"] for r in runs], "s"),
            row("planner's share of the slowest HIGH probe, idle", [r["planning_idle"] for r in runs], "s"),
            row("planner's share of the slowest HIGH probe, while LOW drains", [r["planning_busy"] for r in runs], "s"),
            row("LOW backlog drain rate", [r["drain_rate"] for r in runs]),
            row("HIGH p99 busy / idle", [r["ratio"] for r in runs], "x"),
        ],
        "latency": {"high_idle": mid["idle"], "high_busy": mid["busy"]},
        "ratios": {"HIGH p99 busy / idle (median of the runs)": median([r["ratio"] for r in runs])},
        "series": mid["series"],
        "summary": {"high_p99_busy_vs_idle": median([r["ratio"] for r in runs])},
        "summary_runs": {"high_p99_busy_vs_idle": len(runs)},
        "notes": [f"Each run: idle probes, then the LOW backlog is produced and, once planned, probes until it "
                  f"has drained; probes go out open loop, one every {PROBE_EVERY_S} s in both phases; HIGH and LOW "
                  "writers are separate consumer groups sharing the cores and one node. Ratio per run (its busy "
                  "p99 / its idle p99), median of the runs; the latency lines and plots show the median run. The "
                  "planner's share: from a probe sent to its HIGH chunks produced (the rest is the HIGH writers')."],
    }
