"""Case 7, the baseline: Stream Framework 1.4.0 on the same graph, activities and Cassandra node,
eager (Celery ``always_eager``) and with a real Celery worker (prefork, Redis broker), beside ours
eager on ``CassandraStore`` and our pipeline, on a prefix of the standard pass (SF is slow)."""

from __future__ import annotations

from typing import Any

from benchmarks.harness import sfenv
from benchmarks.harness.context import Context
from benchmarks.harness.eager import eager_pass
from benchmarks.harness.inputs import edges_of
from benchmarks.harness.pipeline import passes, session
from benchmarks.harness.stats import median, row
from benchmarks.harness.stores import connect_store, ensure_edges
from benchmarks.harness.workload import Workload


async def ours_eager(ctx: Context, wl: Workload) -> list[float]:
    """Deliveries/s of fanout's eager mode on ``CassandraStore`` (one chunk at a time, as SF's eager mode)."""
    ks = ctx.keyspace("eager")
    store = await connect_store(ctx.settings, ks)
    await ensure_edges(ctx, store, edges_of(wl, ctx.t0_us, ctx.active_window_us))
    rates = []
    for pass_no in range(ctx.repeats):
        deliveries, secs = await eager_pass(ctx, wl, store, 2000 + pass_no)
        rates.append(deliveries / secs)
    await store.close()
    return rates


async def sf_rates(ctx: Context, wl: Workload, *, worker: bool) -> list[float]:
    sf = await sfenv.run_sf(ctx, wl, store="cassandra", repeats=ctx.repeats, worker=worker)
    return [r["rate"] for r in sf["runs"]]


async def run(ctx: Context) -> dict[str, Any]:
    """Stream Framework 1.4.0 on the same graph and activities, into the same Cassandra node."""
    wl = ctx.sf_workload()
    ours = await ours_eager(ctx, wl)
    ctx.log(f"case 7: ours eager Cassandra {median(ours):,.0f} rows/s")
    sf_eager = await sf_rates(ctx, wl, worker=False)
    sess = await session(ctx, 100)
    pipeline = [r.rate for r in await passes(ctx, sess, wl, "case 7 pipeline", ctx.repeats, 7000)]
    sf_worker = await sf_rates(ctx, wl, worker=True)
    rows = [
        row("fanout eager, CassandraStore", ours),
        row("Stream Framework eager (Celery always_eager), Cassandra", sf_eager),
        row("fanout pipeline (Kafka -> planner -> writers), Cassandra", pipeline),
        row(f"Stream Framework, Celery worker (prefork x{sfenv.WORKER_CONCURRENCY}, Redis broker), Cassandra",
            sf_worker),
    ]
    ratios = {"ours eager / SF eager (Cassandra)": median(ours) / median(sf_eager),
              "ours pipeline / SF Celery worker": median(pipeline) / median(sf_worker)}
    return {
        "title": "Baseline: Stream Framework 1.4.0 on the same graph, activities and Cassandra node",
        "inputs": {**wl.describe(), "sf_table": "its own cqlengine table (feed_id ascii, activity_id "
                   "varint DESC) in its own keyspace on the same node"},
        "rows": rows,
        "ratios": ratios,
        "summary": {"pipeline_vs_stream_framework": ratios["ours pipeline / SF Celery worker"]},
        "summary_runs": {"pipeline_vs_stream_framework": min(len(pipeline), len(sf_worker))},
        "notes": [
            "SF writes each task's 100 rows as unprepared statements sent all at once, then waits; "
            "it trims a feed with probability 0.01 per add (a read and a partition delete).",
        ],
    }
