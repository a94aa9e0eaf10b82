"""Follows rate: follow events per second through the follows agent's ``process`` on the real node,
without Kafka (the batch's lanes per follower, the edge reads and writes, the copy-in of the
followee's newest activities).

Workload: ``--authors`` authors with ``--history`` activities each in their user feeds; then, for
each value of ``--concurrency`` (``FANOUT_FOLLOWS_CONCURRENCY``), ``--follows`` follow events of
random (follower, author) pairs (some followers more than once; ``--each N``: N in a row per
follower, as a user's follows in case 8) as Kafka records: each on its
follower's home partition of ``FANOUT_FOLLOWS_PARTITIONS`` (3), cut into batches of
``FANOUT_BATCH_MAX_RECORDS`` (100), and handed to one ``FollowsAgent``: its partitions at once,
each partition's batches one after the other, as the agent's partition tasks run them. Printed:
follows/s, rows copied/s, this process's CPU and its store requests per follow. Needs 127.0.0.1:9042. Run:
``.venv/bin/python benchmarks/follows_rate.py [--follows 3000] [--concurrency 1,8,32,64]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
import uuid
from types import SimpleNamespace
from typing import Any

from aiokafka.partitioner import murmur2

from fanout import CassandraStore, Fanout, Settings
from fanout.activity import now_micros
from fanout.agents.deadletters import DeadLetters
from fanout.agents.follows import FollowsAgent


class _NoDeadLetters:
    """The agent's producer: every event of the workload is valid, so a dead letter is a failure."""

    async def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
                   headers: Any = ()) -> Any:
        raise RuntimeError(f"a follow event was dead-lettered: {dict(headers)}")


def records(settings: Settings, pairs: list[tuple[str, str]]) -> dict[int, list[Any]]:
    """The follow events as the records of each partition, in produce order."""
    topic, partitions = settings.topic("follows"), settings.follows_partitions
    out: dict[int, list[Any]] = {p: [] for p in range(partitions)}
    stamp = now_micros() // 1000
    for follower, author in pairs:
        partition = (murmur2(follower.encode()) & 0x7FFFFFFF) % partitions
        value = json.dumps({"follower": follower, "followee": author}).encode()
        out[partition].append(SimpleNamespace(topic=topic, partition=partition, offset=len(out[partition]),
                                              timestamp=stamp, key=follower.encode(), value=value, headers=[]))
    return out


async def through_agent(agent: FollowsAgent, by_partition: dict[int, list[Any]]) -> None:
    """Each partition's batches in order, the partitions at once (the agent's partition tasks)."""
    size = agent.settings.batch_max_records

    async def partition(batch_records: list[Any]) -> None:
        for start in range(0, len(batch_records), size):
            await agent.process(batch_records[start : start + size])

    await asyncio.gather(*(partition(r) for r in by_partition.values()))


async def main(args: argparse.Namespace) -> None:
    keyspace = f"fr_{uuid.uuid4().hex[:12]}"
    base = Settings.from_env().replace(store="cassandra", cassandra_keyspace=keyspace)
    store = await CassandraStore.connect(base, keyspace=keyspace)
    await store.migrate()
    try:
        fanout = Fanout(store, base)
        t0 = now_micros() - 3_600_000_000
        for a in range(args.authors):
            for n in range(args.history):
                await fanout.handle_activity(fanout_event(f"author{a}", n), accepted_ts=t0 + a * 10_000 + n)
        rng = random.Random(1)
        for concurrency in [int(c) for c in args.concurrency.split(",")]:
            # the environment's settings with this concurrency (a build without the setting ignores it)
            settings = Settings.from_env({**os.environ, "FANOUT_FOLLOWS_CONCURRENCY": str(concurrency)}).replace(
                store="cassandra", cassandra_keyspace=keyspace)
            agent = FollowsAgent(settings, store)
            agent.dead = DeadLetters(_NoDeadLetters(), settings, agent.role)
            known = set(range(settings.follows_partitions))
            agent.consumer = SimpleNamespace(partitions_for_topic=lambda topic, known=known: known)
            pairs = [(f"f{concurrency}_{n // args.each if args.each > 1 else rng.randint(0, args.follows)}",
                      f"author{rng.randrange(args.authors)}") for n in range(args.follows)]
            by_partition = records(settings, pairs)
            requests = sum(store.requests_by_host().values())
            wall, cpu = time.perf_counter(), time.process_time()
            await through_agent(agent, by_partition)
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            requests = sum(store.requests_by_host().values()) - requests
            copied, n = agent.fanout.writer.rows_written, len(pairs)
            print(f"concurrency {concurrency:3}: {n / wall:8,.0f} follows/s, {copied / wall:9,.0f} rows copied/s, "
                  f"{cpu / n * 1e3:.2f} ms CPU/follow, {requests / n:.1f} requests/follow ({copied / n:.0f} rows "
                  f"each, {n:,} follows in {wall:.1f} s, {settings.follows_partitions} partitions, batches of "
                  f"{settings.batch_max_records})", flush=True)
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
    parser.add_argument("--follows", type=int, default=3000)
    parser.add_argument("--concurrency", default="1,8,32,64", help="FANOUT_FOLLOWS_CONCURRENCY values to run")
    parser.add_argument("--each", type=int, default=1,
                        help="follows per follower, produced in a row (case 8's graph: about 10); 1: random followers")
    asyncio.run(main(parser.parse_args()))
