"""Trim cost on a busy feed: what trimming costs as one feed takes many inserts on the real node.

One feed (``timeline:busy``) takes ``--inserts`` activities, newest last, ``--step`` a call, through
``TimelineWriter`` with the default ``FANOUT_MAX_LENGTH`` (1000) and ``FANOUT_TRIM_EVERY`` (50) on a
fresh keyspace: every insert is followed, about once in ``trim_every``, by a trim that reads the
feed newest first and deletes what is past the kept rows. For each ``--every`` inserts it prints
the wall time, this process's CPU and the node's CPU (``/proc/<pid>/stat`` of the process on the
Cassandra port), and at the end one read of 2,000 entries (past the live rows, to the partition's
end) and the node's ``tombstone_warn_threshold`` lines written meanwhile. ``--follows N``: one reader
follows N authors of 1,000 posts each instead, and each follow is followed by a timed trim of its feed.

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
from fanout import Fanout, Settings
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
        if args.follows:
            await follows(store, settings, args.follows, args.posts)
        else:
            await inserts(store, settings, args, node)
        print(f"node log lines about tombstones met by a read, during this run: {warnings_in(log) - warned:,}")
    finally:
        await store.drop_keyspace()
        await store.close()


async def inserts(store: CassandraStore, settings: Settings, args: argparse.Namespace, node: int | None) -> None:
    """One feed takes ``args.inserts`` activities through the writer; CPU per insert as it goes."""
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
    await read_past_the_end(store, settings)


async def follows(store: CassandraStore, settings: Settings, count: int, posts: int) -> None:
    """One reader follows ``count`` authors one after the other, each with ``posts`` posts in its
    user feed, all posting in the same seconds (author n's i-th post at second i): each trimmed
    follow copy is a row tombstone, which every later trim of the feed reads."""
    fanout = Fanout(store, settings)
    print(f"one reader follows {count} authors of {posts:,} posts each (interleaved in time), max_length "
          f"{settings.max_length}")
    started = time.perf_counter()
    for n in range(count):
        author = f"author{n:03d}"
        acts = [Activity(id=f"{author}-{i:05d}", actor=author, verb="post", object="o", ts=T0 + i * 1_000_000 + n)
                for i in range(posts)]
        await store.apply([TimelineWrite(f"{settings.user_feed_kind}:{author}", a, a.ts) for a in acts])
        try:
            await fanout.follow("reader", author)
            began = time.perf_counter()
            await store.trim("timeline:reader", settings.max_length)
        except StoreError as exc:
            print(f"follow {n + 1}: failed: {str(exc)[:160]}")
            return
        if (n + 1) % 10 == 0:
            print(f"follow {n + 1}: a trim of the reader's feed {(time.perf_counter() - began) * 1000:.0f} ms, "
                  f"{time.perf_counter() - started:.0f}s", flush=True)


async def read_past_the_end(store: CassandraStore, settings: Settings) -> None:
    began = time.perf_counter()
    try:
        page = await store.read(FEED, limit=2 * settings.max_length)
        print(f"a read of {2 * settings.max_length:,}: {len(page):,} entries in {time.perf_counter() - began:.2f}s")
    except StoreError as exc:
        print(f"a read of {2 * settings.max_length:,} failed: {str(exc)[:160]}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inserts", type=int, default=120_000)
    parser.add_argument("--step", type=int, default=10, help="inserts a writer call (default 10)")
    parser.add_argument("--every", type=int, default=10_000, help="print every this many inserts")
    parser.add_argument("--follows", type=int, default=0,
                        help="instead: one reader follows this many authors of --posts posts each (e.g. 110)")
    parser.add_argument("--posts", type=int, default=1000, help="posts of each followed author (default 1000)")
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
