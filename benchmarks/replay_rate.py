"""Replay rate: events/s and timeline rows/s of `fanout replay` on the real broker and node.

Workload: 5,000 users, 3-20 Zipf-weighted followees each (~49k follows), 2,000 activities by the
1,000 most popular accounts, chunk size 100. The events are produced straight to fresh topics;
the first replay fills an empty store, the second runs after `drop_timelines` (the rebuild case).
About 10 minutes on a 2-core machine. Run: `.venv/bin/python benchmarks/replay_rate.py [--activities N]`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import time
import uuid
from datetime import UTC, datetime

import msgspec
from aiokafka import AIOKafkaProducer

from fanout.agents.replay import ReplayOptions, replay
from fanout.agents.topics import create_topics, delete_topics
from fanout.cassandra import CassandraStore
from fanout.settings import Settings


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


async def main(users_n: int, activities: int) -> None:
    tag = f"rr{uuid.uuid4().hex[:16]}"
    settings = Settings.from_env().replace(
        store="cassandra", topic_prefix=f"{tag}.", cassandra_keyspace=tag, chunk_size=100,
        batch_max_records=500, activities_partitions=6, follows_partitions=3, max_in_flight=128,
    )
    rng = random.Random(7)
    users = [f"u{i}" for i in range(users_n)]
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(users))]
    clock = int(time.time() * 1000) - 6 * 3_600_000
    events: list[tuple[str, str, bytes, int]] = []
    for user in users:
        for followee in sorted(set(rng.choices(users, weights, k=rng.randint(3, 20))) - {user}):
            clock += 1
            body = {"follower": user, "followee": followee, "time": _iso(clock)}
            events.append(("follows", user, msgspec.json.encode(body), clock))
    top = min(1_000, users_n)
    for n in range(activities):
        actor = rng.choices(users[:top], weights[:top])[0]
        clock += 1
        body = {"actor": actor, "verb": "pin", "object": f"pin:{n}", "target": f"board:{n % 50}", "time": _iso(clock)}
        events.append(("activities", actor, msgspec.json.encode(body), clock))

    await create_topics(settings)
    store = await CassandraStore.connect(settings)
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all")
    try:
        await store.migrate()
        await producer.start()
        sent = [await producer.send(settings.topic(t), value=v, key=k.encode(), timestamp_ms=ts)
                for t, k, v, ts in events]
        await asyncio.gather(*sent)
        await producer.stop()
        first = await replay(settings, ReplayOptions(), store=store, progress=True)
        await store.drop_timelines()
        second = await replay(settings, ReplayOptions(reset=True), store=store, progress=True)
        for name, s in (("into an empty store", first), ("after drop_timelines", second)):
            print(f"replay {name}: {s.events:,} events ({s.activities:,} activities, {s.follows:,} follows), "
                  f"{s.rows:,} rows in {s.elapsed:.1f}s = {s.events_per_s:,.0f} events/s, "
                  f"{s.rows_per_s:,.0f} rows/s")
    finally:
        await producer.stop()
        try:
            await store.drop_keyspace()
        finally:
            await store.close()
            await delete_topics(settings)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--activities", type=int, default=2_000)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.activities))
