"""Follows rate: ``Fanout.handle_follow`` per second on the real node, the follows agent's work
without Kafka (edge reads and writes, the copy-in of the followee's newest activities).

Workload: ``--authors`` authors with ``--history`` activities each in their user feeds; then
``--follows`` follows of random (follower, author) pairs, applied by ``--tasks`` concurrent tasks
(partitions or processes of the agent), each its own followers in order. Printed: follows/s,
rows copied/s, this process's CPU per follow. Needs 127.0.0.1:9042. Run:
``.venv/bin/python benchmarks/follows_rate.py [--follows 2000] [--tasks 1,4,16]``.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid

from fanout import CassandraStore, Fanout, Settings
from fanout.activity import now_micros


async def main(args: argparse.Namespace) -> None:
    keyspace = f"fr_{uuid.uuid4().hex[:12]}"
    settings = Settings.from_env().replace(store="cassandra", cassandra_keyspace=keyspace)
    store = await CassandraStore.connect(settings, keyspace=keyspace)
    await store.migrate()
    try:
        fanout = Fanout(store, settings)
        t0 = now_micros() - 3_600_000_000
        for a in range(args.authors):
            for n in range(args.history):
                await fanout.handle_activity(fanout_event(f"author{a}", n), accepted_ts=t0 + a * 10_000 + n)
        rng = random.Random(1)
        for tasks in [int(t) for t in args.tasks.split(",")]:
            pairs = [(f"f{tasks}_{rng.randint(0, args.follows)}", f"author{rng.randrange(args.authors)}")
                     for _ in range(args.follows)]
            lanes: list[list[tuple[str, str]]] = [[] for _ in range(tasks)]
            for follower, author in pairs:
                lanes[hash(follower) % tasks].append((follower, author))

            async def lane(work: list[tuple[str, str]]) -> int:
                copied = 0
                for follower, author in work:
                    copied += await fanout.follow(follower, author)
                return copied

            wall, cpu = time.perf_counter(), time.process_time()
            copied = sum(await asyncio.gather(*(lane(w) for w in lanes)))
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            print(f"{tasks:3} tasks: {len(pairs) / wall:8,.0f} follows/s, {copied / wall:9,.0f} rows copied/s, "
                  f"{cpu / len(pairs) * 1e3:.2f} ms CPU/follow ({copied / len(pairs):.0f} rows each)", flush=True)
    finally:
        await store.drop_keyspace()
        await store.close()


def fanout_event(actor: str, n: int):  # type: ignore[no-untyped-def]
    from fanout.codec import ActivityEvent, validate_activity_event

    return validate_activity_event(ActivityEvent(actor=actor, verb="pin", object=f"pin:{actor}:{n}"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--authors", type=int, default=20)
    parser.add_argument("--history", type=int, default=30)
    parser.add_argument("--follows", type=int, default=1000)
    parser.add_argument("--tasks", default="1,8,32")
    asyncio.run(main(parser.parse_args()))
