"""Deliveries/s into an aggregated feed kind vs a flat one, and what a page of each costs to read.

Writes: one author with ``--followers`` followers publishes ``--activities`` activities; the
planner's chunks (``Fanout.add`` with a recording sink) are applied by ``TimelineWriter.write_chunks``
in batches of ``--batch`` chunks, as a writer agent applies a batch of records. The followers' feed
kind is ``timeline`` (flat) in one pass and ``aggregated`` (grouped by verb and day) in the other;
passes alternate, ``--repeats`` each, on one store. Deliveries/s = follower feed rows per second of
``write_chunks`` (trims included).

Reads: a feed of each kind filled with ``max_length`` (1,000) rows of 3 verbs over 6 days, read
``--reads`` times: a flat page of 25, a page of 25 groups, and a notification page of 25 (groups,
marks, unseen/unread counts); medians.

Run: ``.venv/bin/python benchmarks/aggregated_rate.py [--store memory|cassandra] [--followers N]
[--activities N] [--batch N] [--repeats R] [--reads N]``. ``cassandra`` uses the real node
(127.0.0.1:9042) on a fresh keyspace, dropped at the end.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from fanout import Activity, ChunkMessage, Fanout, MemoryStore, Settings, Store
from fanout.activity import now_micros
from fanout.store import TimelineWrite
from fanout.writer import TimelineWriter

KINDS = ("timeline", "aggregated")
VERBS = ("like", "comment", "pin")
DAY_US = 86_400_000_000


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[ChunkMessage] = []

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks.append(chunk)


async def _open(kind: str) -> tuple[Store, Any]:
    if kind == "memory":
        return MemoryStore(), None
    from fanout.cassandra import CassandraStore

    store = await CassandraStore.connect(Settings(cassandra_consistency="ONE"),
                                         keyspace=f"bench_agg_{uuid.uuid4().hex[:12]}")
    await store.migrate()
    return store, store


def _activity(rng: random.Random, now: int, i: int) -> Activity:
    return Activity(id=f"a{i}-{rng.random()}", actor=f"u{rng.randrange(200)}", verb=rng.choice(VERBS),
                    object=f"o{rng.randrange(50)}", ts=now - rng.randrange(6 * DAY_US))


async def _plan(store: Store, settings: Settings, author: str, count: int, rng: random.Random) -> list[ChunkMessage]:
    sink = Recorder()
    feeds = Fanout(store, settings, sink=sink)
    now = now_micros()
    for i in range(count):
        a = _activity(rng, now, i)
        await feeds.add(actor=author, verb=a.verb, object=a.object, id=a.id, time=a.time.isoformat())
    return sink.chunks


async def _median_ms(call: Callable[[], Awaitable[object]], times: int) -> float:
    spent = []
    for _ in range(times):
        start = time.perf_counter()
        await call()
        spent.append(time.perf_counter() - start)
    return statistics.median(spent) * 1000


async def main(args: argparse.Namespace) -> None:
    store, cassandra = await _open(args.store)
    base = Settings(aggregated_kinds=("aggregated=verb_day",), notification_kinds=("aggregated",))
    rng = random.Random(7)
    try:
        for i in range(args.followers):
            await store.set_follow(f"f{i}", "author", True, 1)
        rates: dict[str, list[float]] = {kind: [] for kind in KINDS}
        for repeat in range(args.repeats):
            for kind in KINDS if repeat % 2 == 0 else KINDS[::-1]:
                settings = base.replace(feed_kinds=(kind,))
                chunks = await _plan(store, settings, "author", args.activities, rng)
                writer = TimelineWriter(store, max_length=settings.max_length, trim_every=settings.trim_every)
                start = time.perf_counter()
                for at in range(0, len(chunks), args.batch):
                    await writer.write_chunks(chunks[at : at + args.batch])
                rows = sum(len(c.feeds) for c in chunks)
                rates[kind].append(rows / (time.perf_counter() - start))
        now = now_micros()
        members = [_activity(rng, now, i) for i in range(base.max_length)]
        for kind in KINDS:
            await store.apply([TimelineWrite(f"{kind}:reader", a, a.ts) for a in members])
        reader = Fanout(store, base)
        flat = await _median_ms(lambda: reader.read("reader", limit=25), args.reads)
        grouped = await _median_ms(lambda: reader.read_aggregated("reader", limit=25), args.reads)
        notes = await _median_ms(lambda: reader.notifications("reader", kind="aggregated", limit=25), args.reads)
        groups = len((await reader.read_aggregated("reader", limit=base.max_length)).groups)
    finally:
        if cassandra is not None:
            await cassandra.drop_keyspace()
        await store.close()

    print(f"store {args.store}: {args.followers} followers, {args.activities} activities, batches of {args.batch} "
          f"chunks, {args.repeats} passes per kind (alternating)")
    print(f"{'feed kind':<12} {'deliveries/s (median)':>22}   runs")
    for kind in KINDS:
        print(f"{kind:<12} {statistics.median(rates[kind]):>22,.0f}   {', '.join(f'{r:,.0f}' for r in rates[kind])}")
    print(f"aggregated / flat: {statistics.median(rates['aggregated']) / statistics.median(rates['timeline']):.2f}")
    print(f"reads of a feed of {len(members)} rows ({groups} groups), median of {args.reads}:")
    print(f"  flat page of 25          {flat:8.2f} ms")
    print(f"  page of 25 groups        {grouped:8.2f} ms")
    print(f"  notification page of 25  {notes:8.2f} ms  (+ marks, unseen/unread counts)")


def _args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--store", choices=("memory", "cassandra"), default="memory")
    parser.add_argument("--followers", type=int, default=2000)
    parser.add_argument("--activities", type=int, default=100)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--reads", type=int, default=30)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(_args()))
