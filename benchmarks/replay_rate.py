"""Replay rate: events/s and timeline rows/s of `fanout replay` on the real broker and node.

Workload: ``--users`` users (default 5,000), 3-20 Zipf-weighted followees each (~49k follows),
``--activities`` activities (default 2,000) by the 1,000 most popular accounts, chunk size 100.
The events are produced straight to fresh topics; the first replay fills an empty store, the
second runs after `drop_timelines` (the rebuild case). About 10 minutes on a 2-core machine with
the defaults. Run: `.venv/bin/python benchmarks/replay_rate.py [--users N] [--activities N]`.
``make bench`` runs the first replay on a smaller workload as case 9 (``replay_once``).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from aiokafka import AIOKafkaProducer

if __name__ == "__main__":  # run as a script: import this checkout's fanout
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from fanout.agents.replay import ReplayOptions, ReplaySummary, replay
from fanout.agents.topics import create_topics, delete_topics
from fanout.cassandra import CassandraStore
from fanout.settings import Settings

Event = tuple[str, str, bytes, int]  # (topic name, key, value, record timestamp in ms)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


def replay_events(users_n: int, activities: int, seed: int = 7) -> list[Event]:
    """Every user's follows (in user order), then the activities, one millisecond apart."""
    rng = random.Random(seed)
    users = [f"u{i}" for i in range(users_n)]
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(len(users))]
    clock = int(time.time() * 1000) - 6 * 3_600_000
    events: list[Event] = []
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
    return events


def replay_settings(base: Settings) -> Settings:
    """Fresh topics and keyspace of one measurement."""
    tag = f"rr{uuid.uuid4().hex[:16]}"
    return base.replace(store="cassandra", topic_prefix=f"{tag}.", cassandra_keyspace=tag, chunk_size=100,
                        batch_max_records=500, activities_partitions=6, follows_partitions=3, max_in_flight=128)


async def replay_once(base: Settings, events: list[Event], *, rebuild: bool = False,
                      progress: bool = False) -> list[ReplaySummary]:
    """Produce ``events`` to fresh topics, replay them into an empty store (and, with ``rebuild``,
    again after ``drop_timelines``); the summaries. Topics and keyspace are deleted afterwards."""
    settings = replay_settings(base)
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
        out = [await replay(settings, ReplayOptions(), store=store, progress=progress)]
        if rebuild:
            await store.drop_timelines()
            out.append(await replay(settings, ReplayOptions(reset=True), store=store, progress=progress))
        return out
    finally:
        await producer.stop()
        try:
            await store.drop_keyspace()
        finally:
            await store.close()
            await delete_topics(settings)


async def main(users_n: int, activities: int) -> None:
    events = replay_events(users_n, activities)
    first, second = await replay_once(Settings.from_env(), events, rebuild=True, progress=True)
    for name, s in (("into an empty store", first), ("after drop_timelines", second)):
        print(f"replay {name}: {s.events:,} events ({s.activities:,} activities, {s.follows:,} follows), "
              f"{s.rows:,} rows in {s.elapsed:.1f}s = {s.events_per_s:,.0f} events/s, {s.rows_per_s:,.0f} rows/s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=5_000)
    parser.add_argument("--activities", type=int, default=2_000)
    args = parser.parse_args()
    asyncio.run(main(args.users, args.activities))
