"""Trimming at scale: how far feeds overshoot ``max_length``, and how many trims an insert costs.

Each round every feed receives one insert: the feeds are shuffled into chunks of ``--chunk`` (one
activity per chunk, as the planner sends them) and each chunk goes to one of ``--writers``
``TimelineWriter`` instances picked at random (as if separate writer processes, each with the
default ``FANOUT_TRIM_TRACKED_FEEDS`` unless ``--tracked`` says otherwise). After every round each
feed's row count is read; the overshoot is what it holds past ``max_length``.

Stores: ``counting`` (default, 1,000,000 feeds) keeps only a row count per feed (an insert adds a
row, a trim cuts to ``max_length``), so a million feeds fit; it also records the most rows a feed
held at any moment (after every write, inside calls). ``memory`` is ``MemoryStore`` (default 100,000
feeds); ``cassandra`` is the real node on a fresh keyspace (default 2,000 feeds, counted with reads).

Run: ``.venv/bin/python benchmarks/trim_scale.py [--store counting|memory|cassandra] [--feeds N]
[--rounds R] [--writers W] [--max-length M] [--trim-every T] [--tracked K]``. A million feeds and
20 rounds (20 million inserts) take a few minutes on one core.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fanout import MemoryStore, Settings, Store
from fanout.activity import Activity
from fanout.store import TimelineWrite
from fanout.writer import TimelineWriter

T0 = 1_700_000_000_000_000
DEFAULT_FEEDS = {"counting": 1_000_000, "memory": 100_000, "cassandra": 2_000}


class CountingStore:
    """Rows per feed only: what the trim trigger needs, a million feeds in a few hundred MB."""

    def __init__(self, max_length: int) -> None:
        self.rows: dict[str, int] = {}
        self.peak = 0  # the most rows any feed held after any write
        self.max_length = max_length

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        rows = self.rows
        for w in writes:  # every insert is a new activity: one more row
            rows[w.feed] = n = rows.get(w.feed, 0) + 1
            if n > self.peak:
                self.peak = n

    async def trim(self, feed: str, max_length: int) -> int:
        n = self.rows.get(feed, 0)
        if n <= max_length:
            return 0
        self.rows[feed] = max_length
        return n - max_length


class Trims:
    """Counts the trims a store is asked for."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.count = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        await self.store.apply(writes)

    async def trim(self, feed: str, max_length: int) -> int:
        self.count += 1
        deleted: int = await self.store.trim(feed, max_length)
        return deleted


async def _counts(kind: str, store: Any, feeds: list[str]) -> list[int]:
    if kind == "counting":
        rows = store.rows
        return [rows.get(f, 0) for f in feeds]
    sem = asyncio.Semaphore(64)

    async def one(feed: str) -> int:
        async with sem:
            return len(await store.read(feed, limit=1_000_000))

    return list(await asyncio.gather(*(one(f) for f in feeds)))


async def run(args: argparse.Namespace) -> None:
    feeds_n = args.feeds or DEFAULT_FEEDS[args.store]
    settings = Settings().replace(max_length=args.max_length, trim_every=args.trim_every)
    tracked = settings.trim_tracked_feeds if args.tracked is None else args.tracked
    base: Any
    cassandra: Any = None
    if args.store == "counting":
        base = CountingStore(args.max_length)
    elif args.store == "memory":
        base = MemoryStore()
    else:
        from fanout.cassandra import CassandraStore

        keyspace = f"trim_{uuid.uuid4().hex[:16]}"
        cassandra = base = await CassandraStore.connect(Settings.from_env(), keyspace=keyspace)
        await base.migrate()
    store = Trims(base)
    typed: Store = store  # a thin wrapper: apply and trim, the rest delegated (__getattr__)
    writers = [TimelineWriter(typed, max_length=args.max_length, trim_every=args.trim_every, tracked_feeds=tracked)
               for _ in range(args.writers)]
    rng = random.Random(args.seed)
    feeds = [f"timeline:u{i}" for i in range(feeds_n)]
    order = feeds[:]
    worst = 0
    total = samples = 0
    histogram: dict[int, int] = {}
    inserts = 0
    started = time.perf_counter()
    try:
        for n in range(args.rounds):
            rng.shuffle(order)
            for c in range(0, feeds_n, args.chunk):
                activity = Activity(id=f"a{n}-{c}", actor="a", verb="post", object="o", ts=T0 + n * 10_000_000 + c)
                writes = [TimelineWrite(f, activity, activity.ts) for f in order[c : c + args.chunk]]
                await rng.choice(writers).write(writes)
                inserts += len(writes)
            for rows in await _counts(args.store, base, feeds):
                over = max(0, rows - args.max_length)
                worst = max(worst, over)
                total += over
                samples += 1
                bucket = over // args.trim_every
                histogram[bucket] = histogram.get(bucket, 0) + 1
            print(f"round {n + 1}/{args.rounds}: worst overshoot so far {worst}, "
                  f"{time.perf_counter() - started:.0f}s", flush=True)
    finally:
        if cassandra is not None:
            await cassandra.drop_keyspace()
            await cassandra.close()
    elapsed = time.perf_counter() - started
    t = args.trim_every
    print(f"\n{args.store} store: {feeds_n:,} feeds x {args.rounds} inserts, {args.writers} writers tracking "
          f"{tracked:,} feeds each, chunks of {args.chunk}, max_length {args.max_length}, trim_every {t}")
    print(f"inserts {inserts:,} in {elapsed:.1f}s ({inserts / elapsed:,.0f}/s); trims {store.count:,} "
          f"= {store.count / inserts:.3f} per insert (1/trim_every = {1 / t:.3f})")
    print(f"overshoot after each round, over {samples:,} feed samples: mean {total / samples:.2f} "
          f"(hash rule alone, steady state: {t - 1}), worst {worst} (= {worst / t:.1f} x trim_every)")
    if isinstance(base, CountingStore):
        print(f"most rows any feed held at any moment: {base.peak} (max_length + {base.peak - args.max_length})")
    print("share of samples with overshoot >= k x trim_every, against the README's e^-k:")
    for k in range(1, max(histogram) + 1):
        share = sum(v for b, v in histogram.items() if b >= k) / samples
        print(f"  k={k}: {share:.2e}   e^-{k} = {math.exp(-k):.2e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--store", choices=["counting", "memory", "cassandra"], default="counting")
    parser.add_argument("--feeds", type=int, default=0, help="default: 1,000,000 / 100,000 / 2,000 by store")
    parser.add_argument("--rounds", type=int, default=20, help="inserts per feed")
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--max-length", type=int, default=10)
    parser.add_argument("--trim-every", type=int, default=5)
    parser.add_argument("--tracked", type=int, default=None, help="feeds each writer counts (default: the setting)")
    parser.add_argument("--seed", type=int, default=7)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
