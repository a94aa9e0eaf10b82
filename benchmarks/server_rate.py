"""Server rate: the node's CPU per row depends on how the rows arrive, not only on the rows.

The same rows (the first ``--rows`` of a case-3 pass: the standard workload's follower feeds and
authors' feeds) are written into a fresh keyspace (fanout's DDL) in several ways, interleaved,
``--rounds`` times, and for each the node's CPU per row is read from ``/proc/<pid>/stat``:

* ``raw, N in flight``: 40-row UNLOGGED batches per replica set, each feed's rows together over
  the rows written (``harness/rawload.py``'s ``replica`` strategy), N requests in flight;
* ``raw, 32 in flight, 10,000-row windows``: the same, grouping only within each 10,000 rows (what
  one writer batch of 100 chunks of 100 feeds can group);
* ``CassandraStore.apply``: fanout's own store, one call of all the rows, and one call per 10,000.

Printed and written to ``benchmarks/results/<stamp>-server-rate.{json,md}``: medians and min-max
of rows/s, the node's and this process's CPU per row (the raw lines' requests are built before the
clock starts; the store binds its own inside ``apply``, timed). Needs the node on 127.0.0.1:9042 run on this
machine (its CPU is read by pid). Run: ``.venv/bin/python -m benchmarks.server_rate``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.harness.context import RESULTS
from benchmarks.harness.inputs import timeline_writes
from benchmarks.harness.processes import cpu_seconds, service_pids
from benchmarks.harness.rawload import INSERT, Strategy, request_groups, requests_of, timeline_rows
from benchmarks.harness.stats import median
from benchmarks.harness.workload import standard
from fanout import CassandraStore, Settings

WINDOW = 10_000  # the rows of one writer batch: 100 chunks of 100 feeds
Go = Callable[[], Awaitable[None]]
Prepare = Callable[[int], tuple[int, Go]]  # pass number -> (rows, what writes them: the part timed)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    from cassandra.concurrent import execute_concurrent

    pid = service_pids().get("cassandra")
    if pid is None:
        raise SystemExit("server_rate: no Cassandra listens on 127.0.0.1:9042 on this machine (make up)")
    wl = standard(args.users, args.activities, t0_us=int(time.time() * 1e6) - 3_600_000_000)
    keyspace = f"srate_{uuid.uuid4().hex[:10]}"
    store = await CassandraStore.connect(Settings.from_env(), keyspace=keyspace)
    await store.migrate()
    insert = await asyncio.to_thread(store.session.prepare, INSERT.format(ks=keyspace))

    def raw(in_flight: int, window: int) -> Prepare:
        def prepare(run: int) -> tuple[int, Go]:
            rows = timeline_rows(wl, run, limit=args.rows)
            requests = list(requests_of(insert, request_groups(Strategy("replica", 40, window=window), rows)))

            async def go() -> None:
                await asyncio.to_thread(execute_concurrent, store.session, requests, concurrency=in_flight)
            return len(rows), go
        return prepare

    def through_store(window: int) -> Prepare:
        def prepare(run: int) -> tuple[int, Go]:
            writes = timeline_writes(wl, run)[: args.rows]
            step = window or len(writes)

            async def go() -> None:
                for start in range(0, len(writes), step):
                    await store.apply(writes[start : start + step])
            return len(writes), go
        return prepare

    variants: dict[str, Prepare] = {
        "raw, 1 in flight": raw(1, 0),
        "raw, 4 in flight": raw(4, 0),
        "raw, 32 in flight": raw(32, 0),
        f"raw, 32 in flight, {WINDOW:,}-row windows": raw(32, WINDOW),
        "CassandraStore.apply, one call": through_store(0),
        f"CassandraStore.apply, a call per {WINDOW:,} rows": through_store(WINDOW),
    }
    runs: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    run = 0
    try:
        for round_no in range(args.rounds):
            for name, prepare in variants.items():
                run += 1
                rows, go = prepare(run)
                server, client, wall = cpu_seconds(pid), time.process_time(), time.perf_counter()
                await go()
                wall = time.perf_counter() - wall
                result = {"rows_per_s": rows / wall, "server_us_per_row": (cpu_seconds(pid) - server) / rows * 1e6,
                          "client_us_per_row": (time.process_time() - client) / rows * 1e6}
                runs[name].append(result)
                print(f"round {round_no + 1} {name:44} {result['rows_per_s']:9,.0f} rows/s  node "
                      f"{result['server_us_per_row']:6.1f} us/row  client {result['client_us_per_row']:6.1f} us/row",
                      flush=True)
    finally:
        await store.drop_keyspace()
        await store.close()
    return {"stamp": time.strftime("%Y-%m-%d-%H%M%S"), "rows": args.rows, "rounds": args.rounds,
            "workload": wl.describe(), "load_average": os.getloadavg(), "runs": runs}


def report(results: dict[str, Any]) -> str:
    lines = [f"# Server rate, {results['stamp']}", "",
             f"The first {results['rows']:,} rows of a case-3 pass, each way {results['rounds']} times, interleaved "
             f"(load average at the end {results['load_average'][0]:.1f}). Reproduce: "
             "`.venv/bin/python -m benchmarks.server_rate`.", "",
             "| how the rows arrive | rows/s (min-max) | node CPU us/row (min-max) | client CPU us/row |",
             "| --- | ---: | ---: | ---: |"]
    for name, rs in results["runs"].items():
        rate = [r["rows_per_s"] for r in rs]
        node = [r["server_us_per_row"] for r in rs]
        lines.append(f"| {name} | {median(rate):,.0f} ({min(rate):,.0f}-{max(rate):,.0f}) | {median(node):.1f} "
                     f"({min(node):.1f}-{max(node):.1f}) | {median([r['client_us_per_row'] for r in rs]):.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=30_000, help="rows per measurement (default 30,000)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=10_000, help="the workload's users (case 3's: 10,000)")
    parser.add_argument("--activities", type=int, default=24, help="activities per pass (case 3's: 24)")
    results = asyncio.run(main(parser.parse_args()))
    text = report(results)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{results['stamp']}-server-rate.json").write_text(json.dumps(results, indent=1))
    (RESULTS / f"{results['stamp']}-server-rate.md").write_text(text)
    print(text)
