"""Hybrid fanout: what a post of a huge account costs pushed vs. pulled, and what pulling costs reads.

1. **A post**: an account with ``--followers`` followers posts once with hybrid fanout off (pushed:
   a timeline row per follower) and once while pulled (``FANOUT_PULL_THRESHOLD``, default 10,000:
   the registry, its own feed, and the crossing-down check, which counts up to half the threshold
   of followers). Printed: timeline rows written and seconds, and a linear extrapolation to 1M.
2. **A timeline read** (``Fanout.read``, the first page of ``--limit``) of a user whose timeline
   holds ``max_length`` pushed entries and who follows 0, 1 or 5 pulled accounts with full user
   feeds: p50/p99 over ``--reads`` reads. "off" is the plain read (hybrid off); "0" is a read with
   pulled accounts in the registry that the reader does not follow (two small reads more).

Stores: ``memory`` (default; 200,000 followers) or ``cassandra`` (the real node, a throw-away
keyspace; default 20,000 followers, since writing the follow edges dominates the setup there).

Run: ``.venv/bin/python benchmarks/hybrid.py [--store memory|cassandra] [--followers N] [--reads R]``.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from collections.abc import Sequence
from typing import Any

from fanout import Activity, Fanout, MemoryStore, Settings
from fanout.store import PullState, TimelineWrite

T0 = 1_700_000_000_000_000


class Counting:
    """A store that counts the timeline rows it was asked to write."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.rows = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        self.rows += len(writes)
        await self.store.apply(writes)


async def open_store(kind: str, settings: Settings) -> tuple[Any, Any]:
    """The store and a coroutine function that disposes of it."""
    if kind == "memory":
        store: Any = MemoryStore()

        async def nothing() -> None:
            return None

        return store, nothing
    from fanout.cassandra import CassandraStore

    cassandra = await CassandraStore.connect(settings, keyspace=f"bench_hybrid_{uuid.uuid4().hex[:12]}")
    await cassandra.migrate()

    async def drop() -> None:
        try:
            await cassandra.drop_keyspace()
        finally:
            await cassandra.close()

    return cassandra, drop


async def follow_all(store: Any, followee: str, followers: int) -> None:
    for start in range(0, followers, 2000):
        await asyncio.gather(*(store.set_follow(f"f{i:07d}", followee, True, 1)
                               for i in range(start, min(start + 2000, followers))))


async def post_costs(store: Any, settings: Settings, followers: int) -> list[tuple[str, int, float]]:
    counting = Counting(store)
    await follow_all(store, "star", followers)
    rows: list[tuple[str, int, float]] = []
    for mode, threshold in (("pushed", 0), ("pulled", settings.pull_threshold)):
        if threshold:
            await store.set_pull_state("star", PullState(T0))
        fanout = Fanout(counting, settings.replace(pull_threshold=threshold))
        counting.rows = 0
        start = time.perf_counter()
        await fanout.add(actor="star", verb="post", object=f"post:{mode}", id=f"star-{mode}")
        rows.append((mode, counting.rows, time.perf_counter() - start))
    return rows


def _entries(actor: str, n: int) -> list[Activity]:
    offset = sum(map(ord, actor)) % 997  # distinct times across accounts
    return [Activity(id=f"{actor}-{i:05d}", actor=actor, verb="post", object=f"o{i}", ts=T0 + i * 1_000_000 + offset)
            for i in range(n)]


async def read_latency(store: Any, settings: Settings, reads: int, limit: int) -> dict[str, tuple[float, float]]:
    full = settings.max_length
    pulled = [f"huge{k}" for k in range(5)]
    for account in pulled:
        await store.apply([TimelineWrite(f"user:{account}", a, a.ts) for a in _entries(account, full)])
        await store.set_pull_state(account, PullState(T0))
    out: dict[str, tuple[float, float]] = {}
    for label, follows in (("off", 0), ("0", 0), ("1", 1), ("5", 5)):
        reader = f"reader{label}_{uuid.uuid4().hex[:6]}"
        pushed = [a for k in range(10) for a in _entries(f"small{k}", full // 10)]
        await store.apply([TimelineWrite(f"timeline:{reader}", a, a.ts) for a in pushed])
        for account in pulled[:follows]:
            await store.set_follow(reader, account, True, 1)
        fanout = Fanout(store, settings.replace(pull_threshold=0 if label == "off" else settings.pull_threshold))
        times = []
        for _ in range(reads):
            start = time.perf_counter()
            page = await fanout.read(reader, limit=limit)
            times.append(time.perf_counter() - start)
            assert len(page) == limit
        times.sort()
        out[label] = (statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))])
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", choices=("memory", "cassandra"), default="memory")
    parser.add_argument("--followers", type=int)
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--limit", type=int, default=25)
    args = parser.parse_args()
    followers = args.followers or (200_000 if args.store == "memory" else 20_000)
    settings = Settings.from_env(cassandra_consistency="ONE")
    store, dispose = await open_store(args.store, settings)
    try:
        print(f"store={args.store} followers={followers:,} pull_threshold={settings.pull_threshold:,}")
        print(f"{'post':<8}{'timeline rows':>15}{'seconds':>10}{'rows at 1M':>12}{'s at 1M':>10}")
        for mode, rows, seconds in await post_costs(store, settings, followers):
            scale = 1_000_000 / followers if mode == "pushed" else 1.0  # a pulled post does not grow with F
            print(f"{mode:<8}{rows:>15,}{seconds:>10.3f}{int(rows * scale):>12,}{seconds * scale:>10.2f}")
        print(f"timeline read, first page of {args.limit}, {args.reads} reads; feeds of {settings.max_length}")
        print(f"{'pulled followed':<16}{'p50 ms':>9}{'p99 ms':>9}")
        for label, (p50, p99) in (await read_latency(store, settings, args.reads, args.limit)).items():
            print(f"{label:<16}{p50 * 1000:>9.3f}{p99 * 1000:>9.3f}")
    finally:
        await dispose()


if __name__ == "__main__":
    asyncio.run(main())
