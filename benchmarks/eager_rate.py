"""Eager rate: deliveries/s of ``fanout demo``'s publish step in memory (no services needed).

The workload is the demo's (``fanout.demo``: 10,000 users, 3-20 Zipf-weighted followees each, a
fifth of them active, 400 activities by the 1,000 most popular accounts, chunk size 100). Each run
builds the network on a fresh ``MemoryStore`` and times only the publishing, as the demo reports
it; wall time and this process's CPU time are both printed, since a shared machine stretches
the wall clock. Run: ``.venv/bin/python benchmarks/eager_rate.py [--runs 3] [--profile]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import random
import statistics
import time

from fanout.core import Fanout
from fanout.demo import build_network, publish
from fanout.memory import MemoryStore
from fanout.settings import Settings


async def one_run(users: int, activities: int, seed: int, profile: bool) -> tuple[int, float, float]:
    rng = random.Random(seed)
    async with Fanout(MemoryStore(), Settings()) as fanout:
        network = await build_network(fanout, users=users, rng=rng)
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
    args = parser.parse_args()
    walls: list[float] = []
    cpus: list[float] = []
    for _ in range(1 if args.profile else args.runs):
        deliveries, wall, cpu = asyncio.run(one_run(args.users, args.activities, args.seed, args.profile))
        walls.append(deliveries / wall)
        cpus.append(deliveries / cpu)
        print(f"{deliveries:,} deliveries: {deliveries / wall:,.0f}/s wall, {deliveries / cpu:,.0f}/s of CPU")
    print(f"median of {len(walls)}: {statistics.median(walls):,.0f} deliveries/s wall, "
          f"{statistics.median(cpus):,.0f}/s of CPU (min-max wall {min(walls):,.0f}-{max(walls):,.0f})")


if __name__ == "__main__":
    main()
