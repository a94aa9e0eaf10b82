"""Trim cost on a busy feed: what trimming costs as one feed takes many inserts on the real node.

One feed (``timeline:busy``) takes ``--inserts`` activities, newest last, ``--step`` a call, through
``TimelineWriter`` with the default ``FANOUT_MAX_LENGTH`` (1000) and ``FANOUT_TRIM_EVERY`` (50) on a
fresh keyspace: every insert is followed, about once in ``trim_every``, by a trim that reads the
feed newest first and deletes what is past the kept rows. For each ``--every`` inserts it prints
the wall time, this process's CPU and the node's CPU (``/proc/<pid>/stat`` of the process on the
Cassandra port), and at the end one read of 2,000 entries (past the live rows, to the partition's
end) and the node's ``tombstone_warn_threshold`` lines written meanwhile.

What it shows: trims before 2026-11-27 left a tombstone per trimmed row, which every later trim
and every read past the live rows met again, so the cost per insert grew with the feed's past
and a read that met 100,000 (``tombstone_failure_threshold``) failed; a trim is one range delete
now. For the before, run this script from a checkout of an earlier commit (``git worktree add``,
``PYTHONPATH=<it>``). Run: ``.venv/bin/python benchmarks/trim_cost.py [--inserts 120000]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

if __name__ == "__main__":  # run as a script: import this checkout's fanout and benchmarks
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness.context import ROOT
from benchmarks.harness.processes import cpu_seconds, service_pids
from fanout import Settings
from fanout.activity import Activity
from fanout.cassandra import CassandraStore
from fanout.errors import StoreError
from fanout.store import TimelineWrite
from fanout.writer import TimelineWriter

T0 = 1_700_000_000_000_000
FEED = "timeline:busy"


def warnings_in(log: Path) -> int:
    """Lines of the node's log about tombstones met by a read (0 without the log)."""
    try:
        return sum("tombstone cells" in line for line in log.read_text(errors="replace").splitlines())
    except OSError:
        return 0


async def main(args: argparse.Namespace) -> None:
    settings = Settings.from_env().replace(cassandra_keyspace="bench_trim_cost")
    node = service_pids(settings.cassandra_port).get("cassandra")
    log = ROOT / ".local" / "cassandra" / "logs" / "system.log"
    warned = warnings_in(log)
    store = await CassandraStore.connect(settings)
    try:
        await store.drop_keyspace()
        await store.migrate()
        writer = TimelineWriter(store, max_length=settings.max_length, trim_every=settings.trim_every)
        print(f"one feed, {args.inserts:,} inserts, {args.step} a call, max_length {settings.max_length}, "
              f"trim_every {settings.trim_every}; node pid {node}")
        print(f"{'inserts':>9} {'wall s':>7} {'client us/insert':>17} {'node us/insert':>15}")
        wall, client, server = time.perf_counter(), cpu_seconds(), cpu_seconds(node) if node else 0.0
        for start in range(0, args.inserts, args.step):
            acts = [Activity(id=f"a{n:09d}", actor="u:busy", verb="post", object=f"o{n}", ts=T0 + n)
                    for n in range(start, min(start + args.step, args.inserts))]
            try:
                await writer.write([TimelineWrite(FEED, a, a.ts) for a in acts])
            except StoreError as exc:
                print(f"{start:>9,} inserts: the write failed: {str(exc)[:160]}")
                return
            done = start + len(acts)
            if done % args.every == 0 or done == args.inserts:
                now, c, s = time.perf_counter(), cpu_seconds(), cpu_seconds(node) if node else 0.0
                print(f"{done:>9,} {now - wall:7.2f} {(c - client) * 1e6 / args.every:17.1f} "
                      f"{(s - server) * 1e6 / args.every:15.1f}", flush=True)
                wall, client, server = now, c, s
        began = time.perf_counter()
        try:
            page = await store.read(FEED, limit=2 * settings.max_length)
            print(f"a read of {2 * settings.max_length:,}: {len(page):,} entries in {time.perf_counter() - began:.2f}s")
        except StoreError as exc:
            print(f"a read of {2 * settings.max_length:,} failed: {str(exc)[:160]}")
        print(f"node log lines about tombstones met by a read, during this run: {warnings_in(log) - warned:,}")
    finally:
        await store.drop_keyspace()
        await store.close()


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inserts", type=int, default=120_000)
    parser.add_argument("--step", type=int, default=10, help="inserts a writer call (default 10)")
    parser.add_argument("--every", type=int, default=10_000, help="print every this many inserts")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
