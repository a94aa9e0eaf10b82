"""Case 2, eager in memory: deliveries per second through the core alone (``Fanout.handle_activity``
on a ``MemoryStore``), beside Stream Framework 1.4.0's in-memory feeds with Celery's eager mode."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import sfenv
from benchmarks.harness.context import Context
from benchmarks.harness.eager import eager_pass
from benchmarks.harness.inputs import edges_of
from benchmarks.harness.stats import median, row
from benchmarks.harness.stores import load_memory_edges
from fanout import MemoryStore


async def run(ctx: Context) -> dict[str, Any]:
    """Eager mode, in memory: the core alone, beside Stream Framework's in-memory feeds."""
    wl = ctx.standard_workload()
    repeats = max(ctx.repeats, 5)  # cheap, and short passes are noisy
    ours = []
    for pass_no in range(repeats):
        store = MemoryStore()
        await load_memory_edges(store, edges_of(wl, ctx.t0_us, ctx.active_window_us), ctx.t0_us - 1)
        deliveries, secs = await eager_pass(ctx, wl, store, pass_no)
        assert deliveries == wl.deliveries(), (deliveries, wl.deliveries())
        ours.append(deliveries / secs)
        await store.close()
    ctx.log(f"case 2: ours {median(ours):,.0f} rows/s")
    sf = await sfenv.run_sf(ctx, wl, store="memory", repeats=repeats)
    sf_rates = [r["rate"] for r in sf["runs"]]
    rows = [row("fanout eager, MemoryStore", ours),
            row("Stream Framework 1.4.0 in-memory Feed, Celery eager", sf_rates)]
    ratio = {"ours / Stream Framework": median(ours) / median(sf_rates)}
    return {
        "title": "Eager, in memory: deliveries per second through the core",
        "inputs": {**wl.describe(), "store": "fanout MemoryStore / SF stream_framework.feeds.memory.Feed",
                   "max_length": ctx.settings.max_length},
        "rows": rows,
        "ratios": ratio,
        "summary": {"eager_deliveries_per_s": median(ours)},
        "summary_runs": {"eager_deliveries_per_s": len(ours)},
        "notes": ["Both sides: one process, every chunk written in-process before the next; "
                  "SF's fanout tasks run through Celery's eager apply()."],
    }
