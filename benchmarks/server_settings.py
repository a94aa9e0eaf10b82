"""Cassandra settings for write-heavy timelines, chosen by measurement on a private node.

    .venv/bin/python benchmarks/server_settings.py [--quick] [--repeats 3] [--only memtable,protocol,...]

Root only: it re-runs itself in a network namespace (``harness/stack.py``) and restarts a Cassandra
node of its own there as often as it needs, each time on empty data with ``cassandra.yaml``
rendered from ``services/cassandra/cassandra.yaml.in`` plus the variant's keys. The shared servers
are never touched. The rows are the benchmark workload's planned rows (``harness/rawload.py``),
written raw by cassandra-driver client processes; for every variant it reads the Cassandra JVM's CPU
(``/proc/<pid>/stat``, minus its idle rate) and the clients' CPU, per row, and rows/s.

Experiments, in order; each one's winner is kept for the next:

==============  ==================================================  ==================================
memtable        SkipListMemtable (5.0 default) vs TrieMemtable      Cassandra CPU per row
allocation      heap_buffers vs offheap_objects (64 / 256 MiB)      Cassandra CPU per row
writes          concurrent_writes 8 / 16 / 32                       rows/s (CPU per row beside it)
compaction      timeline table LCS vs UCS: writes, the compaction   CPU per row incl. compaction, then
                they cause, then reads of the newest 20 rows        read p99
protocol        CQL v4 vs v5                                        client CPU per row
batch           rows per multi-partition UNLOGGED batch, and rows   CPU per row (both sides), WARNs
                per partition inside it                             past batch_size_warn_threshold
==============  ==================================================  ==================================

Writes ``benchmarks/results/<stamp>-server-settings.json`` and ``.md``. The machine is shared:
medians of ``--repeats`` passes, the load average noted with each experiment.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

if __name__ == "__main__":  # run as a script: import this checkout's fanout and benchmarks
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness.context import RESULTS
from benchmarks.harness.processes import cpu_seconds
from benchmarks.harness.rawload import RawRun, RawWriters, Strategy
from benchmarks.harness.stack import Stack, enter_netns, in_netns, jars_dir
from benchmarks.harness.stats import median
from benchmarks.harness.stores import connect_store, wait_for_cassandra
from benchmarks.harness.workload import Workload, standard, user_id
from fanout import Settings

WRITER = "benchmarks.cases.case1_raw_writer"
TRIE = "\n  configurations:\n    skiplist:\n      class_name: SkipListMemtable\n" \
       "    trie:\n      class_name: TrieMemtable\n    default:\n      inherits: trie"
SKIPLIST = "\n  configurations:\n    default:\n      class_name: SkipListMemtable"
SINGLE = Strategy("single", 1, 128)
BATCHED = Strategy("replica", 32, 16)
UCS = "{'class': 'UnifiedCompactionStrategy'}"
LCS = "{'class': 'LeveledCompactionStrategy'}"
Variant = tuple[str, dict[str, str]]  # (name, yaml overrides)


class Bench:
    """The private node, its workload, and the measurements of one variant."""

    def __init__(self, stack: Stack, args: argparse.Namespace) -> None:
        self.stack = stack
        self.args = args
        self.settings = Settings.from_env()
        self.wl: Workload = standard(5_000 if args.quick else 10_000, 10 if args.quick else 24,
                                     t0_us=int(time.time() * 1e6) - 3_600_000_000)
        self.t0_us = self.wl.activities[0].ts_us
        self.run_no = 0
        self.idle = 0.0
        self.base: dict[str, str] = {}
        self.keyspace = "settings_bench"
        self.log_mark = 0

    def say(self, text: str) -> None:
        print(f"{time.strftime('%H:%M:%S')} {text}", flush=True)

    async def restart(self, overrides: dict[str, str], compaction: str = LCS) -> None:
        """A fresh node with ``overrides``, fanout's tables (timeline with ``compaction``), idle rate read."""
        self.stack.restart_cassandra(overrides)
        await wait_for_cassandra(self.settings)
        store = await connect_store(self.settings, self.keyspace)
        try:
            await asyncio.to_thread(store.session.execute,
                                    f"ALTER TABLE {self.keyspace}.timeline WITH compaction = {compaction}")
        finally:
            await store.close()
        await asyncio.sleep(10)  # startup work settles
        pid = self.stack.pid("cassandra")
        before = cpu_seconds(pid)
        await asyncio.sleep(3)
        self.idle = (cpu_seconds(pid) - before) / 3
        self.log_mark = self._log_size()

    def _log_size(self) -> int:
        path = self.stack.local / "cassandra" / "logs" / "system.log"
        return path.stat().st_size if path.exists() else 0

    def batch_warnings(self) -> list[float]:
        """Sizes (KiB) of the batches the node warned about since the last call."""
        path = self.stack.local / "cassandra" / "logs" / "system.log"
        with path.open("rb") as fh:
            fh.seek(self.log_mark)
            text = fh.read().decode(errors="replace")
        self.log_mark = self._log_size()
        return [float(m) for m in re.findall(r"Batch for \[[^\]]*\] is of size ([0-9.]+)KiB", text)]

    async def passes(self, strategy: Strategy, *, protocol: int = 0, processes: int = 2, depth: int = 1,
                     repeats: int = 0) -> dict[str, float]:
        """Medians of ``repeats`` whole passes: rows/s, client and server CPU per row, rows per request."""
        args = [self.keyspace, *([str(protocol)] if protocol else [])]
        runs: list[RawRun] = []
        async with RawWriters(WRITER, args, processes, self.stack.pid("cassandra")) as writers:
            self.run_no += depth
            warm = await writers.run(self.wl, self.t0_us, strategy, run=self.run_no, limit=4000)
            for _ in range(repeats or self.args.repeats):
                self.run_no += depth
                runs.append(await writers.run(self.wl, self.t0_us, strategy, run=self.run_no, depth=depth))
        out = {
            "rows_per_s": median([r.rate for r in runs]),
            "client_us_per_row": median([r.client_us_per_row for r in runs]),
            "server_us_per_row": median([max(0.0, r.server_cpu_s - self.idle * r.seconds) / r.rows * 1e6
                                         for r in runs]),
            "rows_per_request": median([r.rows / r.requests for r in runs]),
            "runs": len(runs), "rows_written": warm.rows + sum(r.rows for r in runs),
            "idle_cores": round(self.idle, 3), "load": round(os.getloadavg()[0], 1),
        }
        warned = self.batch_warnings()
        out["batch_warnings"] = len(warned)
        if warned:
            out["warned_batch_kib_median"] = median(warned)
        return out

    async def reads(self, count: int) -> dict[str, float]:
        """Latency of ``count`` reads of the newest 20 rows of random follower feeds, and server CPU per read."""
        store = await connect_store(self.settings, self.keyspace, migrate=False)
        feeds = [f"timeline:{user_id(u)}" for u in sorted({f for fs in self.wl.graph.followers.values() for f in fs})]
        rng = random.Random(3)
        pid = self.stack.pid("cassandra")
        lat = []
        try:
            cpu0 = cpu_seconds(pid)
            t0 = time.perf_counter()
            for _ in range(count):
                started = time.perf_counter()
                await store.read(rng.choice(feeds), limit=20)
                lat.append(time.perf_counter() - started)
            wall = time.perf_counter() - t0
            cpu = cpu_seconds(pid) - cpu0 - self.idle * wall
        finally:
            await store.close()
        lat.sort()
        return {"read_p50_ms": lat[len(lat) // 2] * 1e3, "read_p99_ms": lat[int(len(lat) * 0.99)] * 1e3,
                "server_us_per_read": max(0.0, cpu) / count * 1e6}

    def sstables(self) -> int:
        data = self.stack.local / "cassandra" / "data" / "data" / self.keyspace
        return sum(1 for _ in data.glob("timeline-*/*-Data.db"))

    async def compactions_done(self, limit_s: float) -> float:
        """Wait until the node runs no compaction (``system_views.sstable_tasks`` empty); seconds waited."""
        store = await connect_store(self.settings, self.keyspace, migrate=False)
        started = time.monotonic()
        try:
            while time.monotonic() - started < limit_s:
                if not list(store.session.execute("SELECT keyspace_name FROM system_views.sstable_tasks")):
                    break
                await asyncio.sleep(1)
        finally:
            await store.close()
        return time.monotonic() - started


async def choose(bench: Bench, title: str, variants: list[Variant], measure: Callable[[Variant], Any],
                 better: Callable[[dict[str, Any]], float], results: dict[str, Any]) -> None:
    """Measure each variant (on a fresh node when it changes the yaml), keep the best in ``bench.base``."""
    rows = []
    for name, overrides in variants:
        bench.say(f"{title}: {name}")
        rows.append({"variant": name, "overrides": overrides, **(await measure((name, overrides)))})
        bench.say(f"{title}: {name}: " + ", ".join(f"{k} {v:.1f}" if isinstance(v, float) else f"{k} {v}"
                                                    for k, v in rows[-1].items() if k not in ("variant", "overrides")))
    best = min(rows, key=better)
    bench.base.update(best["overrides"])
    results[title] = {"rows": rows, "chosen": best["variant"]}
    bench.say(f"{title}: chose {best['variant']}")


async def experiments(bench: Bench, only: set[str]) -> dict[str, Any]:
    results: dict[str, Any] = {}
    q = bench.args.quick

    async def on_fresh(overrides: dict[str, str], strategies: list[Strategy], **kw: Any) -> dict[str, Any]:
        await bench.restart({**bench.base, **overrides})
        out: dict[str, Any] = {}
        for s in strategies:
            out.update({f"{s.kind}_{k}": v for k, v in (await bench.passes(s, **kw)).items()})
        return out

    if "memtable" in only:
        variants = [("SkipListMemtable", {"memtable": SKIPLIST}), ("TrieMemtable", {"memtable": TRIE})]
        await choose(bench, "memtable", variants, lambda v: on_fresh(v[1], [SINGLE, BATCHED]),
                     lambda r: r["replica_server_us_per_row"], results)
    if "allocation" in only:
        variants = [("heap_buffers", {"memtable_allocation_type": "heap_buffers"}),
                    ("offheap_objects 64MiB", {"memtable_allocation_type": "offheap_objects"}),
                    ("offheap_objects 256MiB", {"memtable_allocation_type": "offheap_objects",
                                                "memtable_offheap_space": "256MiB"})]
        await choose(bench, "allocation", variants, lambda v: on_fresh(v[1], [BATCHED]),
                     lambda r: r["replica_server_us_per_row"], results)
    if "writes" in only:
        variants = [(f"concurrent_writes {n}", {"concurrent_writes": str(n)}) for n in (8, 16, 32)]
        await choose(bench, "writes", variants, lambda v: on_fresh(v[1], [Strategy("replica", 32, 64)], processes=3),
                     lambda r: -r["replica_rows_per_s"], results)
    if "compaction" in only:
        async def compaction(v: Variant) -> dict[str, Any]:
            await bench.restart(bench.base, compaction=v[1]["compaction"])
            pid = bench.stack.pid("cassandra")
            cpu0, t0 = cpu_seconds(pid), time.monotonic()
            out = await bench.passes(BATCHED, repeats=4 if q else 12)
            waited = await bench.compactions_done(300)
            total = cpu_seconds(pid) - cpu0 - bench.idle * (time.monotonic() - t0)
            out.update({"server_us_per_row_incl_compaction": total / out["rows_written"] * 1e6,
                        "compaction_tail_s": waited, "sstables": bench.sstables(),
                        **(await bench.reads(500 if q else 2000))})
            return out

        await choose(bench, "compaction", [("LCS", {"compaction": LCS}), ("UCS", {"compaction": UCS})], compaction,
                     lambda r: r["server_us_per_row_incl_compaction"] * (1 + r["read_p99_ms"] / 100), results)
        bench.base.pop("compaction", None)
    if "protocol" in only:
        await bench.restart(bench.base)

        async def protocol(v: Variant) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for s in (SINGLE, BATCHED):
                out.update({f"{s.kind}_{k}": val for k, val in
                            (await bench.passes(s, protocol=int(v[1]["protocol"]))).items()})
            return out

        await choose(bench, "protocol", [("v4", {"protocol": "4"}), ("v5", {"protocol": "5"})], protocol,
                     lambda r: r["replica_client_us_per_row"], results)
        bench.base.pop("protocol", None)
    if "batch" in only:
        await bench.restart(bench.base)
        rows = []
        for depth in (1, 3):
            for size in (1, 5, 10, 20, 40, 80, 160):
                strategy = SINGLE if size == 1 else Strategy("replica", size, max(4, 512 // size))
                bench.say(f"batch: {size} rows per batch, {depth} rows per partition")
                rows.append({"rows_per_batch": size, "rows_per_partition": depth,
                             **(await bench.passes(strategy, depth=depth))})
                bench.say(f"batch: {rows[-1]}")
        results["batch"] = {"rows": rows}
    return results


async def main(args: argparse.Namespace) -> int:
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    stack = Stack(args.name, jars_dir(args.jars))
    stack.configure()
    only = set(args.only.split(","))
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M%S")
    bench = Bench(stack, args)
    started = time.perf_counter()
    try:
        results = await experiments(bench, only)
    finally:
        print(stack.down(), end="", flush=True)
    out = {"stamp": stamp, "quick": args.quick, "repeats": args.repeats,
           "elapsed_s": round(time.perf_counter() - started),
           "workload": bench.wl.describe(), "command": "benchmarks/server_settings.py " + " ".join(sys.argv[1:]),
           "chosen": {k: v["chosen"] for k, v in results.items() if "chosen" in v}, "experiments": results}
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stamp}-server-settings.json"
    path.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(f"wrote {path}; chosen: {out['chosen']}")
    return 0


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smaller workload and fewer passes")
    parser.add_argument("--repeats", type=int, default=3, help="passes per measurement (median)")
    parser.add_argument("--only", default="memtable,allocation,writes,compaction,protocol,batch")
    parser.add_argument("--name", default="fanout-settings", help="network namespace and scratch root name")
    parser.add_argument("--jars", default="", help="the resolved jars (default: .local/lib of a worktree)")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse()
    sys.exit(asyncio.run(main(arguments)) if in_netns() else enter_netns(arguments.name))
