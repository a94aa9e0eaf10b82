"""``fanout demo``: a synthetic social network run through fanout, end to end, in-process.

The follow graph is skewed like real ones: followees are drawn with Zipf-like weights, so a
few accounts have thousands of followers and most have a handful. A slice of the users is
active (they read their feed), which makes them HIGH priority followers.
"""

from __future__ import annotations

import random
import time
from collections import Counter
from dataclasses import dataclass

from rich.console import Console
from rich.table import Table

from .activity import now_micros
from .codec import ActivityEvent, remove_event, validate_activity_event
from .core import Fanout
from .memory import MemoryStore
from .settings import Settings
from .store import Store


async def open_store(settings: Settings, *, fresh_keyspace: str | None = None) -> Store:
    """The store the settings name: in-memory, or Cassandra (migrated, optionally a fresh keyspace)."""
    if settings.store == "memory":
        return MemoryStore.from_settings(settings)
    from .cassandra import CassandraStore

    store = await CassandraStore.connect(settings, keyspace=fresh_keyspace)
    if fresh_keyspace is not None:
        await store.drop_keyspace()
    await store.migrate()
    return store


async def run_demo(settings: Settings, *, users: int, activities: int, seed: int) -> int:
    console = Console()
    rng = random.Random(seed)
    if settings.store == "cassandra":
        users = min(users, 3_000)
        activities = min(activities, 400)
    console.print(f"[bold]fanout demo[/] on the [cyan]{settings.store}[/] store (eager mode): "
                  f"{users:,} users, {activities:,} activities, chunk size {settings.chunk_size}")
    store = await open_store(settings, fresh_keyspace="fanout_demo" if settings.store == "cassandra" else None)
    async with Fanout(store, settings) as fanout:
        started = time.perf_counter()
        network = await build_network(fanout, users=users, rng=rng)
        follower_count, active, names = network.follower_count, network.active, network.names
        console.print(f"graph: {network.edges:,} follows, {len(active):,} active users, "
                      f"top accounts {[(n, c) for n, c in follower_count.most_common(3)]} "
                      f"in {time.perf_counter() - started:.1f}s")

        # publish: popular accounts post more, as they do
        started = time.perf_counter()
        deliveries, chunks, posted = await publish(fanout, network, activities=activities, rng=rng)
        publish_s = time.perf_counter() - started

        # the social graph moves: follows copy history in, unfollows take it out, removes fan out
        started = time.perf_counter()
        copied = removed = 0
        for _ in range(200):
            follower, followee = rng.sample(names, 2)
            copied += await fanout.follow(follower, followee)
        for _ in range(100):
            follower = rng.choice(active)
            followees = await store.following(follower)
            if followees:
                removed += await fanout.unfollow(follower, rng.choice(followees))
        for actor, activity_id in rng.sample(posted, k=min(20, len(posted))):
            result = await fanout.handle_activity(remove_event(activity_id, actor=actor))
            deliveries += result.feeds + 1
        churn_s = time.perf_counter() - started

        rate = deliveries / publish_s if publish_s else 0.0
        table = Table(title="fanout demo")
        table.add_column("measure")
        table.add_column("value", justify="right")
        table.add_row("activities published", f"{activities:,}")
        table.add_row("chunk messages", f"{chunks:,}")
        table.add_row("deliveries (timeline rows)", f"{deliveries:,}")
        table.add_row("publish time", f"{publish_s:.2f} s")
        table.add_row("[bold]deliveries per second[/]", f"[bold]{rate:,.0f}[/]")
        table.add_row("follows copied / unfollows removed", f"{copied:,} / {removed:,}")
        table.add_row("churn time (200 follows, 100 unfollows, 20 removes)", f"{churn_s:.2f} s")
        console.print(table)

        for name in [follower_count.most_common(1)[0][0], *active[:2]]:
            feed = await fanout.read(name, limit=5)
            console.print(f"[bold]timeline of {name}[/] (newest first, {len(feed)} shown):")
            for activity in feed:
                console.print(f"  {activity.time:%H:%M:%S.%f}  {activity.actor} {activity.verb} "
                              f"{activity.object} -> {activity.target}")
        high = sum(1 for _ in active)
        console.print(f"done: {deliveries:,} deliveries at {rate:,.0f}/s; {high:,} HIGH-priority users")
    return 0


@dataclass(slots=True)
class Network:
    """The demo's follow graph: user names, their Zipf weights, who is active, follower counts."""

    names: list[str]
    weights: list[float]
    active: list[str]
    follower_count: Counter[str]
    edges: int


async def build_network(fanout: Fanout, *, users: int, rng: random.Random) -> Network:
    """Follow a Zipf-weighted 3-20 accounts per user; a fifth of the users read (HIGH followers)."""
    names = [f"u{i}" for i in range(users)]
    weights = [1.0 / (rank + 1) ** 1.1 for rank in range(users)]
    follower_count: Counter[str] = Counter()
    edges = 0
    at = now_micros() - 3_600_000_000
    for name in names:
        for followee in set(rng.choices(names, weights, k=rng.randint(3, 20))):
            if followee != name:
                await fanout.store.set_follow(name, followee, True, at)
                follower_count[followee] += 1
                edges += 1
    active = rng.sample(names, k=max(1, users // 5))
    for name in active:
        await fanout.read(name, limit=1, touch=True)  # a reader counts as active: a HIGH follower
    return Network(names, weights, active, follower_count, edges)


async def publish(
    fanout: Fanout, network: Network, *, activities: int, rng: random.Random
) -> tuple[int, int, list[tuple[str, str]]]:
    """Publish ``activities`` by the 1,000 most popular accounts (weighted); returns the
    deliveries (follower feeds + the author's), the chunks and the (actor, id) pairs posted."""
    deliveries = chunks = 0
    posted: list[tuple[str, str]] = []
    top, top_weights = network.names[:1000], network.weights[:1000]
    for i in range(activities):
        actor = rng.choices(top, top_weights)[0]
        result = await fanout.handle_activity(_event(actor, i, rng))
        deliveries += result.feeds + 1  # follower timelines + the author's own feed
        chunks += result.chunks
        if result.activity is not None:
            posted.append((actor, result.activity.id))
    return deliveries, chunks, posted


def _event(actor: str, i: int, rng: random.Random) -> ActivityEvent:
    verb = rng.choice(["pin", "like", "comment", "share"])
    return validate_activity_event(
        ActivityEvent(actor=actor, verb=verb, object=f"item:{i}", target=f"board:{rng.randint(1, 50)}")
    )
