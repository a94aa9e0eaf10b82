"""Server config: rows/s, client CPU and Cassandra CPU per row of ``CassandraStore.apply`` per
variant of the Cassandra config, on the same rows, in one run.

    .venv/bin/python -m benchmarks.server_config                      every variant, 3 rounds
    .venv/bin/python -m benchmarks.server_config --variants baseline,trie --rounds 5

It restarts this checkout's own Cassandra node before every measurement (``scripts/services.sh
down/up cassandra`` with the variant's ``FANOUT_CASSANDRA_*`` knobs, through
``benchmarks.harness.stack.FreshStack``), so run it where this checkout owns the node or none runs:
a network namespace of its own (``ip netns exec NAME ...``). A node started from another checkout is
refused before anything is stopped. Kafka is not used.

A measurement: restart the node with the variant's server config; connect with its client settings
(protocol version); a fresh keyspace (``fanout migrate``'s DDL, then the variant's timeline
compaction); ``--warm`` calls of other rows (JIT, connections); then the measured rows, ``--calls``
calls of ``benchmarks/writer_path.calls`` (a writer batch each: 100 chunks of 100 follower feeds,
Zipf over ``--feeds`` feeds), the same rows for every variant and round, through ``apply`` in the
default write mode. Recorded: rows/s (wall), this process's CPU per row (the driver), the node's CPU
per row while the rows were written (``/proc/<pid>/stat``), and the node's CPU per row including
what it spent afterwards until quiet (flushes, compaction; at most ``--settle`` seconds).
Variants run interleaved (A B C ... A B C ...), ``--rounds`` times; printed and written to
``benchmarks/results/<stamp>-server-config.{json,md}``: medians, min-max, ratios to the baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from benchmarks.harness.context import RESULTS
from benchmarks.harness.processes import cpu_seconds
from benchmarks.harness.stack import FreshStack, StackRefused
from benchmarks.harness.stats import median
from benchmarks.harness.stores import connect_store, wait_for_cassandra
from benchmarks.writer_path import calls
from fanout import CassandraStore, Settings, TimelineWrite
from fanout.cassandra.schema import DDL_TIMEOUT, timeline_compaction
from fanout.retry import retry

#: The server config of the baseline, spelled out so that the caller's environment does not leak in.
BASELINE_SERVER = {"FANOUT_CASSANDRA_MEMTABLE": "skiplist", "FANOUT_CASSANDRA_MEMTABLE_ALLOCATION": "heap_buffers",
                   "FANOUT_CASSANDRA_CONCURRENT_WRITES": "8"}


@dataclass(frozen=True)
class Variant:
    """One config under test: server knobs over the baseline's, client settings, timeline compaction."""

    name: str
    server: dict[str, str] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)
    compaction: str = "LCS"

    def describe(self) -> str:
        parts = [f"{k.removeprefix('FANOUT_CASSANDRA_').lower()}={v}" for k, v in self.server.items()]
        parts += [f"{k}={v}" for k, v in self.client.items()]
        parts += [f"timeline compaction {self.compaction}"] if self.compaction != "LCS" else []
        return ", ".join(parts) or "the current defaults"


VARIANTS = {v.name: v for v in (
    Variant("baseline"),
    Variant("trie", server={"FANOUT_CASSANDRA_MEMTABLE": "trie"}),
    Variant("offheap_objects", server={"FANOUT_CASSANDRA_MEMTABLE_ALLOCATION": "offheap_objects"}),
    Variant("writes32", server={"FANOUT_CASSANDRA_CONCURRENT_WRITES": "32"}),
    Variant("ucs", compaction="UCS"),
    Variant("protocol_v4", client={"cassandra_protocol_version": 4}),
)}
METRICS = {  # key -> (label, unit, True when more is better)
    "rows_per_s": ("rows/s", "", True),
    "client_us_per_row": ("client CPU/row", "us", False),
    "server_us_per_row": ("server CPU/row (while writing)", "us", False),
    "server_settled_us_per_row": ("server CPU/row (until quiet)", "us", False),
}


@dataclass
class Bench:
    """What every measurement shares: the stack, the settings, the rows."""

    stack: FreshStack
    settings: Settings
    rows: list[list[TimelineWrite]]
    warm: list[list[TimelineWrite]]
    settle_s: float
    retries: int = 0  # apply calls of the current measurement (warm-up included) retried after a timeout

    async def measure(self, variant: Variant) -> dict[str, float]:
        self.retries = 0
        await asyncio.to_thread(self.stack.restart_node, "cassandra", {**BASELINE_SERVER, **variant.server})
        pid = self.stack.pids()["cassandra"]
        settings = self.settings.replace(**variant.client)
        await wait_for_cassandra(settings)
        store = await connect_store(settings, f"sc_{uuid.uuid4().hex[:12]}")
        try:
            if variant.compaction != "LCS":
                cql = timeline_compaction(store.keyspace, variant.compaction)
                await asyncio.to_thread(store.session.execute, cql, timeout=DDL_TIMEOUT)
            for writes in self.warm:
                await self._apply(store, writes)
            return await self._timed(store, pid)
        finally:
            await store.drop_keyspace()
            await store.close()

    async def _timed(self, store: CassandraStore, pid: int) -> dict[str, float]:
        n = sum(len(writes) for writes in self.rows)
        server, client, wall = cpu_seconds(pid), time.process_time(), time.perf_counter()
        for writes in self.rows:
            await self._apply(store, writes)
        wall, client = time.perf_counter() - wall, time.process_time() - client
        written = cpu_seconds(pid) - server
        settled = await self._quiet(pid) - server
        return {"rows": n, "retries": self.retries, "seconds": round(wall, 2), "rows_per_s": round(n / wall),
                "client_us_per_row": round(client / n * 1e6, 1), "server_us_per_row": round(written / n * 1e6, 1),
                "server_settled_us_per_row": round(settled / n * 1e6, 1)}

    async def _apply(self, store: CassandraStore, writes: list[TimelineWrite]) -> None:
        """``apply``, again after a retriable error as a writer would (a node on a loaded 2-core box
        times writes out now and then: upserts, so a retry is harmless); the retries are counted."""
        def count(_error: BaseException, _delay: float) -> None:
            self.retries += 1

        await retry(partial(store.apply, writes), within=60.0, on_retry=count)

    async def _quiet(self, pid: int) -> float:
        """The node's CPU seconds once it uses less than a tenth of a core over a second (flushes and
        compactions done), or after ``settle_s`` seconds."""
        deadline = time.monotonic() + self.settle_s
        last = cpu_seconds(pid)
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            now = cpu_seconds(pid)
            if now - last < 0.1:
                return now
            last = now
        return last


def summarize(variants: list[Variant], runs: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Per variant and metric: median, min, max, ratio of the medians to the baseline's, and whether it
    is clearly better or worse (> 5 % and the min-max ranges do not overlap)."""
    out: dict[str, Any] = {}
    base = runs.get("baseline")
    for v in variants:
        out[v.name] = {"config": v.describe()}
        for key, (_, _, more_is_better) in METRICS.items():
            values = [r[key] for r in runs[v.name]]
            cell: dict[str, Any] = {"median": median(values), "min": min(values), "max": max(values)}
            if base and v.name != "baseline":
                ref = [r[key] for r in base]
                cell["ratio"] = round(cell["median"] / median(ref), 3)
                gain = cell["ratio"] - 1 if more_is_better else 1 - cell["ratio"]
                apart = min(values) > max(ref) or max(values) < min(ref)
                clear = apart and abs(gain) > 0.05
                cell["verdict"] = ("better" if gain > 0 else "worse") if clear else "same"
            out[v.name][key] = cell
    return out


def markdown(results: dict[str, Any]) -> str:
    lines = [f"# Cassandra server config {results['stamp']}", "", f"`{results['command']}`", "",
             f"{results['machine']}; load average {results['load_average'][0]} at the start, "
             f"{results['load_average'][1]} at the end; {results['rounds']} rounds, interleaved; "
             f"{results['rows']:,} rows per measurement (write mode {results['write_mode']}); apply calls "
             f"retried after a timeout: {sum(r['retries'] for rs in results['runs'].values() for r in rs)}.", "",
             "Median (min-max) [ratio of medians to the baseline; `better`/`worse`: > 5 % and the ranges "
             "do not overlap].", "",
             "| variant | config | " + " | ".join(f"{label} ({unit})" if unit else label
                                                 for label, unit, _ in METRICS.values()) + " |",
             "|---|---|" + "---|" * len(METRICS)]
    for name, s in results["summary"].items():
        cells = []
        for key in METRICS:
            c = s[key]
            text = f"{_number(c['median'])} ({_number(c['min'])}-{_number(c['max'])})"
            if "ratio" in c:
                text += f" [{c['ratio']:.2f}" + (f", {c['verdict']}]" if c["verdict"] != "same" else "]")
            cells.append(text)
        lines.append(f"| {name} | {s['config']} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _number(value: float) -> str:
    """Rates without decimals, microseconds with one."""
    return f"{value:,.0f}" if value >= 1000 else f"{value:,.1f}"


def save(results: dict[str, Any]) -> str:
    """Write ``<stamp>-server-config.json`` and ``.md`` under ``benchmarks/results``; the Markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = markdown(results) if results.get("summary") else ""
    (RESULTS / f"{results['stamp']}-server-config.json").write_text(json.dumps(results, indent=1, default=str))
    (RESULTS / f"{results['stamp']}-server-config.md").write_text(text)
    return text


async def main(args: argparse.Namespace) -> int:
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    variants = [VARIANTS[name] for name in args.variants]
    settings = Settings.from_env()
    stack = FreshStack()
    try:
        owner = stack.check_owned(settings.kafka_bootstrap, (settings.cassandra_hosts[0], settings.cassandra_port))
    except StackRefused as exc:
        print(exc)
        return 2
    from benchmarks.harness.report import machine

    stamp = datetime.now().strftime("%Y-%m-%d-%H%M%S")
    bench = Bench(stack, settings, calls(args.calls, args.feeds, seed=1), calls(args.warm, args.feeds, seed=2),
                  args.settle)
    n = sum(len(writes) for writes in bench.rows)
    load0 = os.getloadavg()[0]
    print(f"{stamp}: {owner}; {len(variants)} variants x {args.rounds} rounds, {n:,} rows each; "
          f"load average {load0:.2f}", flush=True)
    runs: dict[str, list[dict[str, float]]] = {v.name: [] for v in variants}
    results: dict[str, Any] = {"stamp": stamp, "command": " ".join(["python -m benchmarks.server_config", *args.argv]),
                               "machine": machine(), "rounds": args.rounds, "rows": n,
                               "write_mode": settings.cassandra_write_mode, "runs": runs}
    try:
        for rnd in range(args.rounds):
            for v in variants:
                run = await bench.measure(v)
                runs[v.name].append(run)
                print(f"round {rnd + 1} {v.name:16} {run['rows_per_s']:8,} rows/s  "
                      f"client {run['client_us_per_row']:5.1f}  server {run['server_us_per_row']:5.1f} "
                      f"({run['server_settled_us_per_row']:5.1f} until quiet) us CPU/row"
                      + (f", {run['retries']} retried call(s)" if run["retries"] else ""), flush=True)
    finally:
        results["load_average"] = [round(load0, 2), round(os.getloadavg()[0], 2)]
        if all(runs.values()):
            results["summary"] = summarize(variants, runs)
        await asyncio.to_thread(stack.restart_node, "cassandra", BASELINE_SERVER)  # leave it as `make up` would
        print(save(results) or "no complete round: nothing summarized")
        print(f"load average at the end {results['load_average'][1]:.2f}; wrote benchmarks/results/"
              f"{stamp}-server-config.json and .md")
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.server_config", description=__doc__.splitlines()[0])
    parser.add_argument("--variants", type=lambda s: s.split(","), default=list(VARIANTS),
                        help=f"comma separated, baseline first (default {','.join(VARIANTS)})")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds (default 3)")
    parser.add_argument("--calls", type=int, default=4, help="measured apply calls of ~9,300 rows (default 4)")
    parser.add_argument("--warm", type=int, default=2, help="warm-up calls before each measurement (default 2)")
    parser.add_argument("--feeds", type=int, default=20_000)
    parser.add_argument("--settle", type=float, default=10.0, help="at most this long waiting for the node to quieten")
    args = parser.parse_args(argv)
    unknown = [v for v in args.variants if v not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {unknown}; choose from {list(VARIANTS)}")
    args.argv = argv
    return args


if __name__ == "__main__":
    import sys

    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
