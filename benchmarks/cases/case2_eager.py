"""Case 2, eager in memory: deliveries per second through the core alone (``Fanout.handle_activity``
on a ``MemoryStore``), beside Stream Framework 1.4.0's in-memory feeds with Celery's eager mode."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import sfenv
from benchmarks.harness.context import Context
from benchmarks.harness.eager import eager_pass
from benchmarks.harness.errors import StreamFrameworkUnavailable
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
    rows = [row("fanout eager, MemoryStore", ours)]
    notes = []
    try:
        sf = await sfenv.run_sf(ctx, wl, store="memory", repeats=repeats)
        rows.append(row("Stream Framework 1.4.0 in-memory Feed, Celery eager", [r["rate"] for r in sf["runs"]]))
    except StreamFrameworkUnavailable as exc:
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
