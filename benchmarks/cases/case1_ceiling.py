"""Case 1, the ceiling: the pipeline's own rows written raw, by the best strategy the driver allows.

The same rows as a pipeline pass (``harness/rawload.py``: the workload's planned rows, every
follower feed and the author's feed) go into fanout's ``timeline`` table from client processes
with cassandra-driver and nothing else: single rows, one batch per feed partition, and
multi-partition batches per replica set of several sizes, each at a few in-flight depths and
process counts (a sweep over part of a pass); then whole passes at each strategy's best. The
best of them is the ceiling the pipeline is compared with. Beside it: the Cassandra JVM's own CPU
per row ("Cassandra alone": the rows/s the node could take with every core to itself), client CPU
per row, a native-core client (acsylla, the ``bench-native`` extra) on the same rows, and the
same rows through ``CassandraStore.apply``.
"""

from __future__ import annotations

import gc
import importlib.util
import os
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from benchmarks.harness.context import Context
from benchmarks.harness.inputs import timeline_writes
from benchmarks.harness.processes import cpu_seconds
from benchmarks.harness.rawload import NATIVE_PROTOCOL, RawRun, RawWriters, Strategy
from benchmarks.harness.stats import median, row
from benchmarks.harness.stores import connect_store
from benchmarks.harness.workload import Workload

DRIVER = "benchmarks.cases.case1_raw_writer"
NATIVE = "benchmarks.cases.case1_native_writer"
SWEEP: tuple[Strategy, ...] = (
    Strategy("single", 1, 64), Strategy("single", 1, 256),
    Strategy("partition", 1, 64), Strategy("partition", 1, 256),
    *(Strategy("replica", rows, n) for rows in (10, 25, 40, 64) for n in (8, 32)),
)
WINDOWED = "replica_window"  # the best replica strategy, grouping only within a writer batch's rows
PIPELINE_CHUNK_SIZE = 100  # case 3's chunk size
NATIVE_SWEEP: tuple[Strategy, ...] = (Strategy("single", 1, 256), Strategy("replica", 25, 32),
                                      Strategy("replica", 40, 32))


def idle_cpu_rate(pid: int | None, seconds: float = 2.0) -> float:
    """Cores the node burns with no bench load (others' requests, compaction, its own timers)."""
    if not pid:
        return 0.0
    before = cpu_seconds(pid)
    time.sleep(seconds)
    return (cpu_seconds(pid) - before) / seconds


def record(runs: Sequence[RawRun], idle: float) -> dict[str, float]:
    """Medians of the runs: rows/s, requests per pass, client and server (minus idle) CPU per row."""
    return {
        "rate": median([r.rate for r in runs]),
        "rows_per_request": median([r.rows / r.requests for r in runs if r.requests]),
        "client_us_per_row": median([r.client_us_per_row for r in runs]),
        "server_us_per_row": median([max(0.0, r.server_cpu_s - idle * r.seconds) / r.rows * 1e6 for r in runs]),
        "server_gross_us_per_row": median([r.server_us_per_row for r in runs]),  # idle not subtracted
    }


async def sweep(ctx: Context, writers: RawWriters, wl: Workload, strategies: Sequence[Strategy],
                process_counts: Sequence[int], sweep_rows: int, pass_no: int) -> dict[tuple[Strategy, int], float]:
    """Rows/s of every (strategy, processes) on the first ``sweep_rows`` rows of a pass."""
    rates = {}
    for parts in process_counts:
        for strategy in strategies:
            pass_no += 1
            done = await writers.run(wl, ctx.t0_us, strategy, run=pass_no, parts=parts, limit=sweep_rows)
            rates[(strategy, parts)] = done.rate
        best = max((k for k in rates if k[1] == parts), key=lambda k: rates[k])
        ctx.log(f"case 1: sweep, {parts} processes: best {best[0].name} {rates[best]:,.0f} rows/s")
    return rates


def best_per_kind(rates: dict[tuple[Strategy, int], float]) -> dict[str, tuple[Strategy, int]]:
    best: dict[str, tuple[Strategy, int]] = {}
    for key, rate in rates.items():
        kind = key[0].kind
        if kind not in best or rate > rates[best[kind]]:
            best[kind] = key
    return best


async def store_rates(ctx: Context, wl: Workload, keyspace: str, in_flight: int, small: int,
                      run: int) -> dict[str, list[float]]:
    """Rows/s of the same rows through fanout's own store (asyncio bridge, prepared statements,
    bounded in flight), in each write mode; ``concurrent`` writes the first ``small`` rows only."""
    rates: dict[str, list[float]] = {"concurrent": [], "partition_batch": []}
    for mode, runs in rates.items():
        s = await connect_store(ctx.settings.replace(max_in_flight=in_flight), keyspace, migrate=False,
                                write_mode=mode)
        try:
            for _ in range(ctx.repeats):
                run += 1
                writes = timeline_writes(wl, run)
                if mode == "concurrent":
                    writes = writes[:small]
                gc.collect()
                started = time.perf_counter()
                await s.apply(writes)
                runs.append(len(writes) / (time.perf_counter() - started))
        finally:
            await s.close()
    return rates


async def measure(ctx: Context, module: str, ks: str, wl: Workload, strategies: Sequence[Strategy],
                  counts: Sequence[int], sweep_rows: int, pass_no: int, idle: float, window: int = 0
                  ) -> tuple[dict[tuple[Strategy, int], float], dict[str, tuple[Strategy, int]],
                             dict[str, list[RawRun]]]:
    """Sweep with ``module``'s client processes, then whole passes at each kind's best; with a
    ``window``, also the best replica strategy grouping only within ``window``-row windows of the
    pass (kind ``WINDOWED``; each process gets its share of a window)."""
    server = ctx.service_pids.get("cassandra")
    async with RawWriters(module, [ks], max(counts), server) as writers:
        await writers.run(wl, ctx.t0_us, Strategy("single", 1, 64), run=pass_no, limit=2000)  # warm-up
        rates = await sweep(ctx, writers, wl, strategies, counts, sweep_rows, pass_no)
        best = best_per_kind(rates)
        if window and "replica" in best:
            strategy, parts = best["replica"]
            best[WINDOWED] = (replace(strategy, window=max(1, window // parts)), parts)
        passes: dict[str, list[RawRun]] = {kind: [] for kind in best}
        pass_no += 1000
        for _ in range(ctx.repeats):
            for kind, (strategy, parts) in best.items():
                pass_no += 1
                passes[kind].append(await writers.run(wl, ctx.t0_us, strategy, run=pass_no, parts=parts))
    ctx.log(f"case 1 ({module.rsplit('_', 2)[-2]}): " + "; ".join(
        f"{s.name} x{p}: {median([r.rate for r in passes[k]]):,.0f} rows/s" for k, (s, p) in best.items()))
    return rates, best, passes


async def run(ctx: Context) -> dict[str, Any]:
    """The ceiling: the pipeline's own rows written raw by the best strategy the driver allows."""
    wl = ctx.standard_workload()
    ks = ctx.keyspace("ceiling")
    store = await connect_store(ctx.settings, ks)  # the same table (fanout's own DDL)
    await store.close()
    writers = ctx.high_writers + ctx.low_writers
    counts = sorted({1, 2, writers})
    sweep_rows = 20_000 if not ctx.quick else 6_000
    server = ctx.service_pids.get("cassandra")
    if server is None:
        raise RuntimeError("no Cassandra process listens on the CQL port here: its CPU per row cannot be read "
                           "(run the bench on the machine that runs the node)")
    idle = idle_cpu_rate(server)
    ctx.log(f"case 1: the node burns {idle:.2f} cores idle (subtracted); sweep of {len(SWEEP)} strategies x "
            f"{counts} processes on {sweep_rows:,} rows")
    window = ctx.settings.batch_max_records * PIPELINE_CHUNK_SIZE  # the rows of one writer batch of case 3
    rates, best, passes = await measure(ctx, DRIVER, ks, wl, SWEEP, counts, sweep_rows, 10_000, idle, window)
    kinds = {kind: record(runs, idle) for kind, runs in passes.items()}
    top = max((k for k in kinds if k != WINDOWED), key=lambda k: kinds[k]["rate"])
    cores = os.cpu_count() or 1
    ceiling = kinds[top]
    alone = cores / (ceiling["server_us_per_row"] / 1e6) if ceiling["server_us_per_row"] else float("nan")
    gross = ceiling["server_gross_us_per_row"]
    alone_low = cores / (gross / 1e6) if gross else float("nan")
    ctx.shared["ceiling"] = {"rate": ceiling["rate"], "strategy": best[top][0].name, "processes": best[top][1]}
    if WINDOWED in kinds:  # the grouping a writer batch allows: case 3's second ratio
        ctx.shared["ceiling"]["windowed"] = {"rate": kinds[WINDOWED]["rate"], "window": window,
                                             "strategy": best[WINDOWED][0].name}
    rows = [row(f"ceiling: raw {best[top][0].name}, {best[top][1]} processes (cassandra-driver)",
                [r.rate for r in passes[top]], "rows/s", **ceiling)]
    rows += [row(f"raw {best[k][0].name}, {best[k][1]} processes (cassandra-driver)", [r.rate for r in passes[k]],
                 "rows/s", **kinds[k]) for k in kinds if k != top]
    rows.append({"name": "Cassandra alone: node CPU per row at the ceiling, minus its idle rate", "unit": "us/row",
                 "median": ceiling["server_us_per_row"], "runs": []})
    rows.append({"name": f"Cassandra alone: rows/s with all {cores} cores to the node (from the line above)",
                 "unit": "rows/s", "median": alone, "runs": []})
    rows.append({"name": "Cassandra alone, gross: all the node's CPU during the passes per row (an upper bound "
                 "when others use the node)", "unit": "us/row", "median": gross, "runs": []})
    rows.append({"name": f"Cassandra alone, gross: rows/s with all {cores} cores to the node (a lower bound)",
                 "unit": "rows/s", "median": alone_low, "runs": []})
    notes = []
    native: dict[str, Any] = {}
    if importlib.util.find_spec("acsylla") is None:
        reason = "acsylla is not installed (pip install -e '.[bench-native]'); the native reference line is skipped"
        ctx.log(f"[yellow]case 1: {reason}[/]")
        notes.append(reason)
    else:
        try:
            n_rates, n_best, n_passes = await measure(ctx, NATIVE, ks, wl, NATIVE_SWEEP, [max(counts)], sweep_rows,
                                                      50_000, idle)
        except Exception as exc:  # an optional reference line: the ceiling stands without it, the reason is kept
            reason = f"the native reference line (acsylla) failed: {type(exc).__name__}: {exc}"
            ctx.log(f"[red]case 1: {reason}[/]")
            notes.append(reason)
        else:
            n_kinds = {kind: record(runs, idle) for kind, runs in n_passes.items()}
            for k in n_kinds:
                rows.append(row(f"native reference: acsylla {n_best[k][0].name}, {n_best[k][1]} processes "
                                f"(protocol v{NATIVE_PROTOCOL})", [r.rate for r in n_passes[k]], "rows/s",
                                **n_kinds[k]))
            native = {f"{s.name} x{p}": v for (s, p), v in n_rates.items()}
    small = 20_000 if not ctx.quick else 5_000
    store_runs = await store_rates(ctx, wl, ks, 256, small, 90_000)
    rows.append(row("fanout CassandraStore.apply concurrent, 1 process x 256", store_runs["concurrent"]))
    rows.append(row("fanout CassandraStore.apply partition_batch, 1 process x 256", store_runs["partition_batch"]))
    return {
        "title": "Ceiling: the pipeline's own rows written raw (same driver, node, table and rows)",
        "inputs": {**wl.describe(), "rows_per_pass": wl.deliveries(), "sweep_rows": sweep_rows,
                   "process_counts": counts, "strategies": [s.name for s in SWEEP],
                   "node_idle_cores": round(idle, 3), "protocol_version": ctx.settings.cassandra_protocol_version},
        "rows": rows,
        "ceiling": {"rate": ceiling["rate"], "strategy": best[top][0].to_json(), "processes": best[top][1],
                    **ceiling, "cassandra_alone_rows_per_s": alone,
                    "cassandra_alone_gross_rows_per_s": alone_low, "cassandra_pid": server},
        "sweep_table": [{"strategy": s.name, "processes": p, "rate": v} for (s, p), v in rates.items()],
        "native_sweep": native,
        "summary": {"ceiling_rows_per_s": ceiling["rate"]},
        "summary_runs": {"ceiling_rows_per_s": len(passes[top])},
        "notes": [
            *notes,
            "Rows: one pass of the workload's planned rows (each follower feed and the author's feed), the rows the "
            "pipeline writes, into fanout's own timeline table; each client process owns a share of the feeds.",
            "Strategies: single = one prepared INSERT per row; partition = one UNLOGGED batch per feed partition "
            "(fanout's partition_batch limits); replica = rows grouped by replica set (driver token map), sorted "
            "by feed, cut into N-row UNLOGGED batches. Requests built while timed, sent with execute_concurrent.",
            f"The ceiling groups each feed's rows over the whole pass (several rows per feed partition a batch). "
            f"A writer can group only the rows of one batch: the line 'grouped within N-row windows' is the best "
            f"replica strategy grouping only within each {window:,} rows of the pass (FANOUT_BATCH_MAX_RECORDS x "
            f"case 3's chunk size {PIPELINE_CHUNK_SIZE}, each process its share), the ceiling the pipeline's "
            "batches can reach on these rows; case 3 gives its ratio to both.",
            "Server CPU per row: the Cassandra JVM's utime+stime (/proc/<pid>/stat) over each pass, minus its idle "
            f"rate ({idle:.2f} cores), per row; exact only when nothing else writes to the node. "
            "Client CPU per row: the client processes' own CPU (all threads).",
            "Cassandra alone = cores / server CPU per row: the rows/s the node would take if clients cost nothing. "
            "On a node others use too, their load moves between the idle measurement and the passes, so the net "
            "figure can read near 0; the gross one (nothing subtracted) is then the honest upper bound per row.",
        ],
    }
