"""Case 3, the pipeline end to end: deliveries per second from events on ``activities`` to rows in
Cassandra, through ``python -m fanout worker planner`` and the writers; latency per priority, CPU
seconds per pass of every process, and the ratio to case 1's ceiling."""

from __future__ import annotations

import os
from typing import Any

from benchmarks.harness.context import Context
from benchmarks.harness.pipeline import passes, session
from benchmarks.harness.stats import median, row
from benchmarks.harness.tracking import POLL_S, latency_rows, series


async def run(ctx: Context) -> dict[str, Any]:
    """The pipeline end to end: activities topic -> planner -> writers -> Cassandra rows."""
    wl = ctx.standard_workload()
    sess = await session(ctx, 100)
    results = await passes(ctx, sess, wl, "case 3", ctx.repeats, 100)
    rates = [r.rate for r in results]
    mid = sorted(results, key=lambda r: r.rate)[len(results) // 2]
    ratios = {}
    ceiling = ctx.shared.get("ceiling")
    if ceiling:
        ratios[f"pipeline / ceiling ({ceiling['strategy']}, {ceiling['processes']} processes)"] = (
            median(rates) / ceiling["rate"])
        windowed = ceiling.get("windowed")
        if windowed:
            ratios[f"pipeline / raw grouped only within {windowed['window']:,}-row windows (a writer batch)"] = (
                median(rates) / windowed["rate"])
    cpu = {k: median([r.extra["cpu_s"].get(k, 0.0) for r in results]) for k in results[0].extra["cpu_s"]}
    wall = median([r.seconds for r in results])
    cores = os.cpu_count() or 0
    return {
        "title": "Pipeline end to end: activities topic -> planner -> writers -> Cassandra rows",
        "inputs": {**wl.describe(), "workers": f"1 planner, {ctx.high_writers} high writers, "
                   f"{ctx.low_writers} low writers (one process each)",
                   "batch_max_records": ctx.settings.batch_max_records, "max_in_flight": ctx.settings.max_in_flight,
                   "verified": results[0].verified},
        "rows": [row("pipeline deliveries/s", rates),
                 *(row(f"{p.upper()} p{q} under full load", [r.pcts(p)[i] for r in results], "s")
                   for p in ("high", "low") for i, q in ((0, 50), (2, 99)))],
        "latency": latency_rows(results),
        "latency_runs": [{"high": r.pcts("high"), "low": r.pcts("low")} for r in results],
        "ratios": ratios,
        "summary": {"pipeline_rows_per_s": median(rates),
                    "high_p99_s_loaded": median([r.pcts("high")[2] for r in results])},
        "summary_runs": {"pipeline_rows_per_s": len(rates), "high_p99_s_loaded": len(results)},
        "series": {"case3": series(mid)},
        "cpu_per_pass_s": {**cpu, "wall": round(wall, 2), "cores": cores},
        "notes": [f"CPU seconds per pass (median; wall {wall:.1f}s x {os.cpu_count()} cores = "
                  f"{wall * (cores or 1):.1f} core-seconds): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])),
                  "Latency: from the activity's send to the poll that saw the writer's commit past its chunk "
                  f"(rows are visible before the commit; poll every {POLL_S * 1000:.0f} ms), per follower."],
    }
