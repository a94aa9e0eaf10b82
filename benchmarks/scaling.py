"""The measurements behind benchmarks/SCALING.md: the pipeline on the one-node stack and on the
three-node cluster, in one run.

    .venv/bin/python -m benchmarks.scaling                 both stacks, 3 passes each (about 15 min)
    .venv/bin/python -m benchmarks.scaling --stacks 3 --repeats 2

It starts and stops the stacks itself (``scripts/services.sh``, ``FANOUT_NODES`` 1 then 3): run it
where nothing else binds 127.0.0.1-3:9092/9042 (a fresh machine, or a network namespace of its
own: ``ip netns exec NAME ...``). For each stack, case 3's session (``benchmarks/harness/pipeline``:
planner, ``--high-writers`` + ``--low-writers`` writer processes, the standard workload) runs
``--repeats`` passes, and each pass records:

* deliveries/s end to end (first event sent -> last row acknowledged and committed);
* CPU seconds of every process: planner, writers (from the session), each Kafka and Cassandra
  node (by the pids in ``.local/<node>/pid``, from ``/proc``), so the rates per core do not depend
  on what else shares the machine as much as wall time does;
* bytes the pass appended to the Kafka logs of its topics (activities, high, low), all replicas.

On the one-node stack it also measures the bytes a timeline row takes on disk: ``--storage-feeds``
feeds of 1,000 rows each (realistic ids and fields), then a graceful restart of Cassandra (it
flushes its memtables) and the size of the table's files. Writes
``benchmarks/results/<stamp>-scaling.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import logging
import os
import subprocess
import time
from datetime import datetime
from typing import Any

from cassandra import WriteTimeout
from rich.console import Console

from benchmarks.harness.context import RESULTS, ROOT, Context
from benchmarks.harness.inputs import edges_of, events
from benchmarks.harness.pipeline import Session, close, session
from benchmarks.harness.processes import cpu_seconds
from benchmarks.harness.stats import median
from benchmarks.harness.stores import connect_store, drop_keyspaces
from benchmarks.harness.tracking import PassResult
from fanout import Activity, ActivityEvent, CassandraStore, Settings
from fanout.errors import StoreError
from fanout.store import TimelineWrite

STACKS: dict[int, dict[str, Any]] = {
    1: {"kafka_bootstrap": "127.0.0.1:9092", "cassandra_hosts": ("127.0.0.1",), "cassandra_replication": 1},
    3: {"kafka_bootstrap": "127.0.0.1:9092,127.0.0.2:9092,127.0.0.3:9092",
        "cassandra_hosts": ("127.0.0.1", "127.0.0.2", "127.0.0.3"), "cassandra_replication": 3},
}
NODES = ("kafka", "cassandra", *(f"{kind}-{n}" for kind in ("kafka", "cassandra") for n in (1, 2, 3)))
ROWS_PER_FEED = 1000  # max_length


def services(*args: str, nodes: int = 1) -> None:
    """``scripts/services.sh ARGS`` with ``FANOUT_NODES=nodes``; fails loudly. Readiness may take
    600 s (``FANOUT_SERVICES_TIMEOUT``, unless set): a fresh node on a busy 2-core box needed more than
    the one-node default of 120 s."""
    env = {"FANOUT_SERVICES_TIMEOUT": "600", **os.environ, "FANOUT_NODES": str(nodes)}
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), *args], env=env, check=True, cwd=ROOT)


def node_pids() -> dict[str, int]:
    """The server nodes of this checkout that run: node name (``kafka``, ``cassandra-2``...) -> pid,
    from the pid files ``scripts/services.sh`` writes (this script started them)."""
    out = {}
    for node in NODES:
        try:
            pid = int((ROOT / ".local" / node / "pid").read_text().split()[0])
            os.kill(pid, 0)
        except (OSError, ValueError):
            continue
        out[node] = pid
    return out


def log_bytes(prefix: str) -> int:
    """Bytes in the Kafka log segments of the topics named ``prefix*``, on every broker of this checkout."""
    return sum(f.stat().st_size for f in (ROOT / ".local").glob(f"kafka*/data/{prefix}*/*.log"))


def cpu_of(cpu: dict[str, float], *names: str) -> float:
    """CPU seconds of the processes whose role starts with one of ``names`` (``cassandra`` sums its nodes)."""
    return sum(v for k, v in cpu.items() if k.startswith(names))


def per(amount: float, seconds: float) -> float | None:
    return round(amount / seconds) if seconds > 0 else None


async def measured_pass(sess: Session, evs: list[ActivityEvent], pids: dict[str, int], *,
                        limit_s: float, expected: int) -> tuple[PassResult, dict[str, float], int]:
    """One pass; with the CPU seconds of every process (workers from the pass, server nodes by
    pid) and the bytes it appended to the Kafka logs (every replica)."""
    before = {node: cpu_seconds(pid) for node, pid in pids.items()}
    logged = log_bytes(sess.settings.topic_prefix)
    result = await sess.run_pass(evs, "scaling", limit_s=limit_s, expected=expected)
    kafka_bytes = log_bytes(sess.settings.topic_prefix) - logged
    cpu = {k: v for k, v in result.extra["cpu_s"].items() if k.startswith(("planner", "writer", "bench"))}
    cpu.update({node: round(cpu_seconds(pid) - before[node], 2) for node, pid in pids.items()})
    return result, cpu, kafka_bytes


def summary(result: PassResult, cpu: dict[str, float], kafka_bytes: int, writers: int,
            replication: int) -> dict[str, Any]:
    """The numbers of one pass that SCALING.md uses."""
    n, secs = result.deliveries, result.seconds
    writer_cpu = cpu_of(cpu, "writer")
    return {
        "deliveries": n, "seconds": round(secs, 2), "deliveries_per_s": round(result.rate),
        "chunks": result.extra["chunks"], "cpu_s": cpu,
        "per_writer_process_s": round(result.rate / writers),
        "per_writer_cpu_s": per(n, writer_cpu),
        "writer_core_share": round(writer_cpu / (secs * writers), 2),
        "per_cassandra_cpu_s": per(n, cpu_of(cpu, "cassandra")),
        "per_kafka_cpu_s": per(n, cpu_of(cpu, "kafka")),
        "chunks_per_planner_cpu_s": per(result.extra["chunks"], cpu_of(cpu, "planner")),
        "kafka_bytes_per_delivery": round(kafka_bytes / n, 1),
        "kafka_bytes_per_delivery_per_replica": round(kafka_bytes / n / replication, 1),
        "server_cores_busy": round((cpu_of(cpu, "cassandra") + cpu_of(cpu, "kafka")) / secs, 2),
        "high_p99_s": round(result.pcts("high")[2], 2), "low_p99_s": round(result.pcts("low")[2], 2),
    }


async def cassandra_answers(settings: Settings, within: float = 300) -> None:
    """Connect until the driver gets a session (a node that just became ready on a loaded box may
    still time the driver's first connection out); ``StoreError`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        try:
            store = await CassandraStore.connect(settings)
        except StoreError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(2)
            continue
        await store.close()
        return


async def pipeline_passes(nodes: int, args: argparse.Namespace, console: Console) -> dict[str, Any]:
    """``args.repeats`` passes of the standard workload through the pipeline on the stack of ``nodes``."""
    settings = Settings.from_env().replace(cassandra_consistency="LOCAL_QUORUM", **STACKS[nodes])
    replication = STACKS[nodes]["cassandra_replication"]
    ctx = Context(quick=args.quick, repeats=args.repeats, console=console, settings=settings,
                  high_writers=args.high_writers, low_writers=args.low_writers)
    wl = ctx.standard_workload()
    writers = args.high_writers + args.low_writers
    runs: list[dict[str, Any]] = []
    verified = ""
    load0 = os.getloadavg()[0]
    try:
        for attempt in range(5):  # the driver's first connection times out now and then on a loaded box
            await cassandra_answers(settings)
            try:
                sess = await session(ctx, 100)
                break
            except StoreError as exc:
                if attempt == 4 or not exc.retriable:
                    raise
                ctx.log(f"starting the session: {exc}; again")
        for attempt in range(5):  # idempotent upserts; a timeout on a loaded box is retried
            try:
                await sess.ensure_edges(edges_of(wl, ctx.t0_us, ctx.active_window_us))
                break
            except WriteTimeout as exc:
                if attempt == 4:
                    raise
                ctx.log(f"loading the follow graph: {exc}; again")
        pids = node_pids()
        for i in range(args.repeats):
            evs = events(wl.activities, 100 + i)
            result, cpu, kafka_bytes = await measured_pass(sess, evs, pids, limit_s=max(180.0, wl.deliveries() / 200),
                                                           expected=wl.deliveries())
            if i == 0:
                verified = await sess.verify(wl, evs)
            runs.append(summary(result, cpu, kafka_bytes, writers, replication))
            ctx.log(f"{nodes} node(s): pass {i + 1}/{args.repeats}: {result.deliveries:,} rows in "
                    f"{result.seconds:.2f}s = {result.rate:,.0f}/s; CPU s {cpu}")
    finally:
        await close(ctx)
        await drop_keyspaces(settings, ctx.keyspaces)
    keys = [k for k in runs[0] if isinstance(runs[0][k], int | float) and k != "chunks"]
    return {
        "nodes": nodes, "replication": replication, "writers": f"{args.high_writers} high + {args.low_writers} low",
        "workload": wl.describe(), "expected_deliveries": wl.deliveries(), "verified": verified,
        "load_average": [round(load0, 1), round(os.getloadavg()[0], 1)],
        "median": {k: median([run[k] for run in runs if run[k] is not None]) for k in keys},
        "runs": runs,
    }


def _row(feed: str, n: int) -> TimelineWrite:
    digest = hashlib.blake2b(f"{feed}/{n}".encode(), digest_size=16).hexdigest()
    activity = Activity(id=digest, actor=f"u{n * 7919 % 100_000_000:08d}", verb="pin",
                        object=f"pin:{n * 104_729 % 10**9:09d}", target=f"board:{n % 100_000:05d}",
                        ts=1_700_000_000_000_000 + n * 1_000_000)
    return TimelineWrite(feed, activity, activity.ts)


async def row_bytes(feeds: int, console: Console) -> dict[str, Any]:
    """On-disk bytes per timeline row on the one-node stack: ``feeds`` feeds of ``ROWS_PER_FEED`` rows."""
    settings = Settings.from_env().replace(**STACKS[1])
    keyspace = f"bench_storage_{int(time.time())}"
    store = await connect_store(settings, keyspace)
    try:
        started = time.perf_counter()
        for i in range(feeds):
            feed = f"timeline:u{i * 9973 % 100_000_000:08d}"
            await store.apply([_row(feed, n) for n in range(ROWS_PER_FEED)])
        wrote = time.perf_counter() - started
    finally:
        await store.close()
    console.print(f"storage: wrote {feeds * ROWS_PER_FEED:,} rows in {wrote:.1f}s; restarting Cassandra to flush")
    services("down", "cassandra")
    services("up", "cassandra")
    files = list((ROOT / ".local" / "cassandra" / "data" / "data" / keyspace).glob("timeline-*/*"))
    size = sum(f.stat().st_size for f in files if f.is_file())
    data = sum(f.stat().st_size for f in files if f.name.endswith("-Data.db"))
    await drop_keyspaces(settings, [keyspace])
    rows = feeds * ROWS_PER_FEED
    return {"rows": rows, "feeds": feeds, "bytes": size, "bytes_per_row": round(size / rows, 1),
            "data_bytes_per_row": round(data / rows, 1),
            "row": "32-hex id, actor u########, verb pin, object pin:#########, target board:#####, no extra"}


def markdown(results: dict[str, Any]) -> str:
    stacks = results["stacks"]
    lines = [f"# Scaling measurements {results['stamp']}", "", f"`{results['command']}` ({results['cores']} cores)",
             "", "Medians of the passes; CPU counted per process from /proc.", "",
             "| | " + " | ".join(f"{s['nodes']} node(s), RF {s['replication']}" for s in stacks) + " |",
             "|---|" + "---|" * len(stacks)]
    names = {
        "deliveries_per_s": "end-to-end deliveries/s", "per_writer_process_s": "deliveries/s per writer process",
        "writer_core_share": "writer CPU use (share of a core)", "per_writer_cpu_s": "deliveries per writer CPU-second",
        "per_cassandra_cpu_s": "deliveries per Cassandra CPU-second (all nodes)",
        "per_kafka_cpu_s": "deliveries per Kafka CPU-second (all brokers)",
        "chunks_per_planner_cpu_s": "chunk messages per planner CPU-second",
        "kafka_bytes_per_delivery": "Kafka log bytes per delivery (all replicas)",
        "kafka_bytes_per_delivery_per_replica": "Kafka log bytes per delivery (one replica)",
        "server_cores_busy": "server cores busy (Kafka + Cassandra CPU / wall)",
        "high_p99_s": "HIGH p99 (s)", "low_p99_s": "LOW p99 (s)",
    }
    for key, name in names.items():
        cells = (f"{s['median'].get(key, float('nan')):,.2f}".rstrip("0").rstrip(".") for s in stacks)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines.append("| passes | " + " | ".join(str(len(s["runs"])) for s in stacks) + " |")
    lines.append("| load average (start, end) | " + " | ".join(str(s["load_average"]) for s in stacks) + " |")
    lines.append("| writers | " + " | ".join(s["writers"] for s in stacks) + " |")
    lines += ["", *(f"- {s['nodes']} node(s): {s['verified']}" for s in stacks)]
    if results.get("storage"):
        st = results["storage"]
        lines += ["", f"Timeline row on disk (one replica): {st['bytes_per_row']} bytes "
                  f"({st['data_bytes_per_row']} in Data.db), {st['rows']:,} rows in {st['feeds']} feeds; {st['row']}."]
    return "\n".join(lines) + "\n"


def save(results: dict[str, Any]) -> str:
    """Write ``benchmarks/results/<stamp>-scaling.json`` and ``.md``; return the Markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{results['stamp']}-scaling.json").write_text(json.dumps(results, indent=1, default=str))
    text = markdown(results) if results["stacks"] else ""
    (RESULTS / f"{results['stamp']}-scaling.md").write_text(text)
    return text


async def main(args: argparse.Namespace) -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    console = Console()
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M%S")
    results: dict[str, Any] = {"stamp": stamp, "command": "python -m benchmarks.scaling " + " ".join(args.argv),
                               "cores": os.cpu_count(), "stacks": []}
    try:
        for nodes in args.stacks:
            services("down")
            services("up", nodes=nodes)
            console.print(f"[bold]{nodes}-node stack up[/]")
            results["stacks"].append(await pipeline_passes(nodes, args, console))
            save(results)  # what a later stack's failure would otherwise lose
            if nodes == 1 and args.storage_feeds:
                results["storage"] = await row_bytes(args.storage_feeds, console)
                save(results)
    finally:
        services("down")
    console.print(save(results))
    return 0


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.scaling", description=__doc__.splitlines()[0])
    parser.add_argument("--stacks", type=lambda s: [int(x) for x in s.split(",")], default=[1, 3],
                        help="stack sizes, in order (default 1,3)")
    parser.add_argument("--repeats", type=int, default=3, help="passes per stack (default 3)")
    parser.add_argument("--quick", action="store_true", help="the quick workload (5,000 users)")
    parser.add_argument("--high-writers", type=int, default=2)
    parser.add_argument("--low-writers", type=int, default=1)
    parser.add_argument("--storage-feeds", type=int, default=200, help="feeds of 1,000 rows to size (0: skip)")
    args = parser.parse_args(argv)
    args.argv = argv
    return args


if __name__ == "__main__":
    import sys

    sys.exit(asyncio.run(main(parse(sys.argv[1:]))))
