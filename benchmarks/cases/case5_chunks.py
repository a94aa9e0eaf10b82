"""Case 5, chunk size: rows/s and latency per priority for chunk sizes 10 to 2000, on the same
writers (only the planner restarts per size), over half the standard pass."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from benchmarks.harness.context import Context
from benchmarks.harness.pipeline import passes, session
from benchmarks.harness.stats import median, row
from benchmarks.harness.tracking import latency_rows

CHUNK_SIZES = (10, 50, 100, 500, 2000)


async def run(ctx: Context) -> dict[str, Any]:
    """Chunk size sweep: throughput and latency."""
    base = ctx.standard_workload()
    half = base.prefix(base.deliveries() // 2)  # about half the standard pass: 5 sizes x the runs
    rows, table = [], []
    for cs in CHUNK_SIZES:
        wl = replace(half, chunk_size=cs)
        sess = await session(ctx, cs)
        results = await passes(ctx, sess, wl, f"case 5 chunk {cs}", ctx.repeats, 500 + cs)
        rates = [r.rate for r in results]
        lat = latency_rows(results)
        rows.append(row(f"chunk size {cs}", rates, chunks_per_pass=wl.chunks(cs)))
        spread = {}
        for p in ("high", "low"):
            for i, q in ((0, "p50"), (2, "p99")):
                per_run = [r.pcts(p)[i] for r in results]
                spread[f"{p}_{q}_min"], spread[f"{p}_{q}_max"] = min(per_run), max(per_run)
        table.append({"chunk_size": cs, "rate": median(rates), "rate_min": min(rates), "rate_max": max(rates),
                      "chunks": wl.chunks(cs),
                      **{f"high_{k}": v for k, v in lat["high"].items()},
                      **{f"low_{k}": v for k, v in lat["low"].items()}, **spread})
    await session(ctx, 100)
    return {
        "title": "Chunk size sweep: throughput and latency",
        "inputs": {**replace(half, chunk_size=100).describe(), "chunk_size": list(CHUNK_SIZES)},
        "rows": rows,
        "sweep": table,
        "notes": ["The same writers throughout; only the planner restarts with each chunk size. Latency "
                  "percentiles per follower, pooled over the runs; the plot's error bars span the runs (min-max)."],
    }
