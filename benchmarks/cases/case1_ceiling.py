"""Case 1, the ceiling: raw timeline-row inserts per second on this node with this driver.

``case1_raw_writer`` processes (as many as the pipeline has writers) insert one pass's rows into
fanout's own ``timeline`` table with ``execute_concurrent``, single rows and one UNLOGGED batch per
feed partition (fanout's batch limits); an in-flight sweep picks the best concurrency, then the
repeats run at it. Beside them: one process, and the same rows through ``CassandraStore.apply``.
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from typing import Any

from benchmarks.harness.context import ROOT, Context
from benchmarks.harness.inputs import activity
from benchmarks.harness.processes import child_env
from benchmarks.harness.stats import median, row
from benchmarks.harness.stores import connect_store
from benchmarks.harness.workload import Workload, user_id
from fanout import TimelineWrite
from fanout.cassandra import BATCH_MAX_BYTES, BATCH_MAX_STATEMENTS

IN_FLIGHT = (32, 64, 128, 256)
BATCH_LIMITS = f"<= {BATCH_MAX_STATEMENTS} statements / {BATCH_MAX_BYTES // 1024} KiB of values"


class RawWriters:
    """``parts`` persistent ``case1_raw_writer`` processes (the ceiling's client processes)."""

    def __init__(self, ctx: Context, keyspace: str, parts: int) -> None:
        self.ctx = ctx
        self.keyspace = keyspace
        self.parts = parts
        self.procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> RawWriters:
        for _ in range(self.parts):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.cases.case1_raw_writer", self.keyspace, cwd=ROOT,
                env=child_env(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
            self.procs.append(proc)
        for proc in self.procs:
            await self._answer(proc, 120)
        return self

    @staticmethod
    async def _answer(proc: asyncio.subprocess.Process, limit_s: float) -> dict[str, Any]:
        assert proc.stdout is not None  # started with stdout=PIPE
        line = await asyncio.wait_for(proc.stdout.readline(), limit_s)
        if not line:
            raise RuntimeError(f"raw writer {proc.pid} exited (code {await proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    @staticmethod
    async def _tell(procs: list[asyncio.subprocess.Process], lines: list[bytes]) -> None:
        for proc, line in zip(procs, lines, strict=True):
            assert proc.stdin is not None  # started with stdin=PIPE
            proc.stdin.write(line)
        await asyncio.gather(*(proc.stdin.drain() for proc in procs if proc.stdin is not None))

    async def run(self, wl: Workload, *, mode: str, concurrency: int, run: int, parts: int, limit: int = 0) -> float:
        """Rows/s of one pass written by ``parts`` processes together."""
        procs = self.procs[:parts]
        commands = []
        for i in range(parts):
            cmd = {"users": wl.graph.users, "activities": len(wl.activities), "t0_us": self.ctx.t0_us, "run": run,
                   "part": i, "parts": parts, "mode": mode, "concurrency": concurrency,
                   "limit": limit // parts if limit else 0}
            commands.append((json.dumps(cmd) + "\n").encode())
        await self._tell(procs, commands)
        for proc in procs:
            await self._answer(proc, 300)
        await self._tell(procs, [b"go\n"] * parts)
        done = [await self._answer(proc, 900) for proc in procs]
        return float(sum(d["rows"] for d in done) / (max(d["end"] for d in done) - min(d["start"] for d in done)))

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


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
                writes: list[TimelineWrite] = []
                for act in wl.activities:
                    a = activity(act, run)
                    writes.extend(
                        TimelineWrite(f"timeline:{user_id(u)}", a, a.ts) for u in wl.graph.followers.get(act.actor, [])
                    )
                    writes.append(TimelineWrite(f"user:{a.actor}", a, a.ts))
                if mode == "concurrent":
                    writes = writes[:small]
                gc.collect()
                started = time.perf_counter()
                await s.apply(writes)
                runs.append(len(writes) / (time.perf_counter() - started))
        finally:
            await s.close()
    return rates


async def run(ctx: Context) -> dict[str, Any]:
    """The physical limit: raw timeline inserts with the driver, no fanout code in the way."""
    wl = ctx.standard_workload()
    ks = ctx.keyspace("ceiling")
    store = await connect_store(ctx.settings, ks)  # the same table (fanout's own DDL)
    await store.close()
    parts = ctx.high_writers + ctx.low_writers  # as many client processes as the pipeline has writers
    sweep_rows = 30_000 if not ctx.quick else 4_000
    small = 20_000 if not ctx.quick else 5_000
    sweep: dict[str, dict[int, float]] = {"single": {}, "grouped": {}}
    pass_no = 1000
    ctx.log(f"case 1: in-flight sweep {IN_FLIGHT} per process, {parts} processes, {sweep_rows:,} rows each")
    finals: dict[str, list[float]] = {k: [] for k in ("single_n", "grouped_n", "single_1", "grouped_1")}
    async with RawWriters(ctx, ks, parts) as writers:
        await writers.run(wl, mode="single", concurrency=64, run=pass_no, parts=parts, limit=2000)  # warm-up
        for n in IN_FLIGHT:
            for mode in sweep:
                pass_no += 1
                sweep[mode][n] = await writers.run(wl, mode=mode, concurrency=n, run=pass_no, parts=parts,
                                                   limit=sweep_rows)
        best = {mode: max(rates, key=lambda k: rates[k]) for mode, rates in sweep.items()}
        ctx.log(f"case 1: sweep { {m: {k: round(v) for k, v in r.items()} for m, r in sweep.items()} }; best {best}")
        for _ in range(ctx.repeats):
            for key, mode, n_parts, limit in (("single_n", "single", parts, 0), ("grouped_n", "grouped", parts, 0),
                                              ("single_1", "single", 1, small), ("grouped_1", "grouped", 1, 0)):
                pass_no += 1
                finals[key].append(await writers.run(wl, mode=mode, concurrency=best[mode], run=pass_no,
                                                     parts=n_parts, limit=limit))
    ctx.log(f"case 1: {parts} processes: single {median(finals['single_n']):,.0f}/s, grouped "
            f"{median(finals['grouped_n']):,.0f}/s")
    store_runs = await store_rates(ctx, wl, ks, best["single"], small, pass_no)
    ctx.shared["ceiling"] = {"single": median(finals["single_n"]), "grouped": median(finals["grouped_n"]),
                             "processes": parts}
    return {
        "title": "Ceiling: raw Cassandra timeline inserts (same driver, node and table)",
        "inputs": {**wl.describe(), "rows_per_pass": wl.deliveries(), "client_processes": parts,
                   "sweep_rows": sweep_rows, "in_flight_sweep": list(IN_FLIGHT),
                   "one_process_single_rows": small, "batch_limits": BATCH_LIMITS},
        "rows": [
            row(f"raw single-row inserts, {parts} processes x {best['single']} in flight", finals["single_n"],
                in_flight=best["single"]),
            row(f"raw unlogged batch per partition, {parts} processes x {best['grouped']} in flight",
                finals["grouped_n"], in_flight=best["grouped"]),
            row(f"raw single-row inserts, 1 process x {best['single']} in flight", finals["single_1"]),
            row(f"raw unlogged batch per partition, 1 process x {best['grouped']} in flight", finals["grouped_1"]),
            row(f"fanout CassandraStore.apply concurrent, 1 process x {best['single']}", store_runs["concurrent"]),
            row(f"fanout CassandraStore.apply partition_batch, 1 process x {best['single']}",
                store_runs["partition_batch"]),
        ],
        "sweep": {mode: {str(k): v for k, v in rates.items()} for mode, rates in sweep.items()},
        "notes": [
            "Raw writes: cassandra.concurrent.execute_concurrent (the driver's fastest path), prepared "
            f"statements, {parts} client processes (as many as the pipeline's writers) each owning a share of "
            "the feeds, started together; grouped = a pass's rows grouped by feed partition, one UNLOGGED "
            f"batch per partition ({BATCH_LIMITS}: fanout.cassandra's BATCH_MAX_STATEMENTS and "
            "BATCH_MAX_BYTES, the limits of its partition_batch write mode).",
            "The pipeline's ratio to the ceiling uses the multi-process single-row and grouped rates.",
        ],
    }
