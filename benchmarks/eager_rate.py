"""Eager rate: deliveries/s of ``fanout demo``'s publish step in memory (no services needed).

The workload is the demo's (``fanout.demo``: 10,000 users, 3-20 Zipf-weighted followees each, a
fifth of them active, 400 activities by the 1,000 most popular accounts, chunk size 100). Each run
builds the network on a fresh ``MemoryStore`` and times only the publishing, as the demo reports
it; wall time and this process's CPU time are both printed, since a shared machine stretches
the wall clock. Run: ``.venv/bin/python benchmarks/eager_rate.py [--runs 3] [--profile] [--parts]``.

``--parts`` runs the same publishing with the store's writes taken out (``MemoryStore.apply_feeds``
does nothing, so nothing is trimmed either), interleaved with the whole, to show what they cost:
what is left is planning, chunking, tracing and the calls around them, the floor of this design.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import statistics
import time
from collections.abc import Sequence

from fanout.activity import Activity
from fanout.core import Fanout
from fanout.demo import build_network, publish
from fanout.memory import MemoryStore
from fanout.settings import Settings

PARTS = ("whole", "without the store's writes (planning only)")


async def _nothing(
    feeds: Sequence[str], activity: Activity, write_ts: int, remove: bool, *, over: int | None = None
) -> list[str]:
    return []


async def one_run(
    users: int, activities: int, seed: int, profile: bool, part: str = PARTS[0]
) -> tuple[int, float, float]:
    rng = random.Random(seed)
    store = MemoryStore()
    async with Fanout(store, Settings()) as fanout:
        network = await build_network(fanout, users=users, rng=rng)
        if part == PARTS[1]:
            store.apply_feeds = _nothing  # type: ignore[method-assign]
        profiler = cProfile.Profile() if profile else None
        wall, cpu = time.perf_counter(), time.process_time()
        if profiler:
            profiler.enable()
        deliveries, _, _ = await publish(fanout, network, activities=activities, rng=rng)
        if profiler:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(20)
    return deliveries, wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--activities", type=int, default=400)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--profile", action="store_true", help="one run under cProfile (slower)")
    parser.add_argument("--parts", action="store_true", help="what each part costs (see the module doc)")
    args = parser.parse_args()
    if args.parts:
        parts(args.runs, args.users, args.activities, args.seed)
        return
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(1 if args.profile else args.runs):
        deliveries, wall, cpu = asyncio.run(one_run(args.users, args.activities, args.seed, args.profile))
        walls.append(deliveries / wall)
        cpus.append(deliveries / cpu)
        print(f"{deliveries:,} deliveries: {deliveries / wall:,.0f}/s wall, {deliveries / cpu:,.0f}/s of CPU")
    print(f"median of {len(walls)}: {statistics.median(walls):,.0f} deliveries/s wall, "
          f"{statistics.median(cpus):,.0f}/s of CPU (min-max wall {min(walls):,.0f}-{max(walls):,.0f})")


def parts(runs: int, users: int, activities: int, seed: int) -> None:
    """Each of ``PARTS`` ``runs`` times, interleaved; CPU time per delivery, medians."""
    cpu: dict[str, list[float]] = {part: [] for part in PARTS}
    for _ in range(runs):
        for part in PARTS:
            deliveries, _, seconds = asyncio.run(one_run(users, activities, seed, False, part))
            cpu[part].append(seconds / deliveries)
    whole = statistics.median(cpu[PARTS[0]])
    for part, values in cpu.items():
        per = statistics.median(values)
        print(f"{part:30} {per * 1e6:5.2f} us of CPU per delivery = {1 / per:>9,.0f} deliveries/s "
              f"({per / whole:.2f} of the whole)")


if __name__ == "__main__":
    main()
