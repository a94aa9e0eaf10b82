"""Writer path: rows/s and client CPU per row of ``CassandraStore.apply`` per write mode, same rows.

The rows are what writer batches carry: ``--calls`` calls of 100 chunks each, a chunk one
activity into 100 follower feeds drawn (Zipf-weighted) from ``--feeds`` feeds, so a call holds
10,000 rows with a few rows per feed. The modes run interleaved on one fresh keyspace, ``--runs``
times; printed: median rows/s (wall), this process's CPU per row (the driver's cost) and the
min-max. Needs the node on 127.0.0.1:9042. Run:
``.venv/bin/python benchmarks/writer_path.py [--modes concurrent,partition_batch,replica_batch]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import time
import uuid

from fanout import Activity, CassandraStore, Settings, TimelineWrite


def calls(n_calls: int, feeds: int, seed: int) -> list[list[TimelineWrite]]:
    rng = random.Random(seed)
    names = [f"timeline:u{i}" for i in range(feeds)]
    weights = [1.0 / (rank + 1) ** 0.8 for rank in range(feeds)]
    t0 = int(time.time() * 1e6) - 3_600_000_000
    out = []
    for c in range(n_calls):
        rows: list[TimelineWrite] = []
        for k in range(100):
            a = Activity(id=f"s{seed}c{c}a{k}", actor=f"u{k}", verb="pin", object=f"pin:{c}:{k}", ts=t0 + c * 100 + k,
                         target=f"board:{k % 50}")
            rows += [TimelineWrite(f, a, a.ts) for f in set(rng.choices(names, weights, k=100))]
        out.append(rows)
    return out


async def main(args: argparse.Namespace) -> None:
    keyspace = f"wp_{uuid.uuid4().hex[:12]}"
    settings = Settings.from_env()
    modes = args.modes.split(",")
    stores = {m: await CassandraStore.connect(settings, keyspace=keyspace, write_mode=m) for m in modes}
    await stores[modes[0]].migrate()
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    try:
        for run in range(args.runs):
            for mode in modes:
                batch = calls(args.calls, args.feeds, seed=run * 10 + modes.index(mode))
                rows = sum(len(b) for b in batch)
                wall, cpu = time.perf_counter(), time.process_time()
                for writes in batch:
                    await stores[mode].apply(writes)
                wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
                results[mode].append((rows / wall, cpu / rows * 1e6))
                print(f"run {run} {mode:16} {rows / wall:9,.0f} rows/s  {cpu / rows * 1e6:6.1f} us CPU/row", flush=True)
        for mode, rs in results.items():
            rates = [r for r, _ in rs]
            print(f"{mode:16} median {statistics.median(rates):9,.0f} rows/s (min-max {min(rates):,.0f}-"
                  f"{max(rates):,.0f}), {statistics.median(c for _, c in rs):.1f} us client CPU/row")
    finally:
        await stores[modes[0]].drop_keyspace()
        for store in stores.values():
            await store.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--modes", default="concurrent,partition_batch,replica_batch")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--calls", type=int, default=3)
    parser.add_argument("--feeds", type=int, default=20_000)
    asyncio.run(main(parser.parse_args()))
