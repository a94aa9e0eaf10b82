"""The synthetic workload every case shares: a skewed follow graph and the activities posted on it.

Standard library only (the Stream Framework side reads the same workload as JSON).

Graph (after ``fanout.demo``): ``users`` users; each follows ``3..20`` accounts drawn with Zipf-like
weights ``1 / rank**zipf``, so a few accounts have thousands of followers and most have a handful.
A fixed share of users is active (HIGH priority followers); the rest are LOW.

Activities: popular accounts post more (actors drawn with the same weights from the ``top``
accounts), each with a unique object id and a time one millisecond apart.
"""

from __future__ import annotations

import itertools
import json
import random
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

VERBS = {1: "follow", 2: "comment", 3: "love", 4: "add"}


@dataclass(slots=True)
class Graph:
    users: int
    seed: int
    zipf: float
    active_share: float
    followers: dict[int, list[int]]  # followee -> followers (ascending)
    active: set[int]

    @property
    def edges(self) -> int:
        return sum(len(f) for f in self.followers.values())

    def split(self, actor: int) -> tuple[list[int], list[int]]:
        """(HIGH, LOW) followers of ``actor``."""
        high = [f for f in self.followers.get(actor, []) if f in self.active]
        low = [f for f in self.followers.get(actor, []) if f not in self.active]
        return high, low


@dataclass(slots=True)
class Act:
    actor: int
    verb: int
    object: int
    target: int
    ts_us: int


@dataclass(slots=True)
class Workload:
    graph: Graph
    activities: list[Act]
    chunk_size: int = 100
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def actors(self) -> list[int]:
        return sorted({a.actor for a in self.activities})

    def deliveries(self) -> int:
        """Timeline rows one pass writes: every follower's feed and the author's own feed."""
        return sum(len(self.graph.followers.get(a.actor, [])) + 1 for a in self.activities)

    def high_low_rows(self) -> tuple[int, int]:
        high = low = 0
        for a in self.activities:
            h, lo = self.graph.split(a.actor)
            high += len(h)
            low += len(lo)
        return high, low

    def prefix(self, deliveries: int) -> Workload:
        """The first activities, until they are worth at least ``deliveries`` timeline rows."""
        acts, total = [], 0
        for act in self.activities:
            if total >= deliveries:
                break
            acts.append(act)
            total += len(self.graph.followers.get(act.actor, [])) + 1
        return Workload(self.graph, acts, self.chunk_size)

    def chunks(self, chunk_size: int) -> int:
        total = 0
        for a in self.activities:
            h, lo = self.graph.split(a.actor)
            total += -(-len(h) // chunk_size) + -(-len(lo) // chunk_size)
        return total

    def describe(self) -> dict[str, Any]:
        """The inputs of a case, as the report states them."""
        counts = sorted(len(f) for f in self.graph.followers.values())
        per_activity = [len(self.graph.followers.get(a.actor, [])) for a in self.activities]
        high, low = self.high_low_rows()
        return {
            "users": self.graph.users,
            "edges": self.graph.edges,
            "follower_distribution": (
                f"Zipf s={self.graph.zipf} over followees, 3-20 follows per user; followers per "
                f"account: median {statistics.median(counts):.0f}, p99 {_pct(counts, 99):.0f}, "
                f"max {counts[-1]}; {self.graph.active_share:.0%} of users active (HIGH)"
            ),
            "activities": len(self.activities),
            "distinct_actors": len(self.actors),
            "followers_per_activity": f"median {statistics.median(per_activity):.0f}, max {max(per_activity)}",
            "deliveries_per_pass": self.deliveries(),
            "high_rows": high,
            "low_rows": low,
            "chunk_size": self.chunk_size,
            "chunks_per_pass": self.chunks(self.chunk_size),
            **self.extra,
        }

    def sf_json(self, path: Path) -> Path:
        """The workload for ``sf_bench.py``: followers of the posting actors and the activities."""
        followers = {}
        for actor in self.actors:
            high, low = self.graph.split(actor)
            followers[str(actor)] = {"high": high, "low": low}
        acts = [[a.actor, a.verb, a.object, a.target, a.ts_us] for a in self.activities]
        path.write_text(json.dumps({"followers": followers, "activities": acts}))
        return path


def _pct(sorted_values: list[int], pct: float) -> float:
    if not sorted_values:
        return 0.0
    index = min(len(sorted_values) - 1, round(pct / 100 * (len(sorted_values) - 1)))
    return float(sorted_values[index])


def build_graph(users: int, *, seed: int = 7, zipf: float = 1.1, active_share: float = 0.2) -> Graph:
    rng = random.Random(seed)
    names = list(range(users))
    cum = list(itertools.accumulate(1.0 / (rank + 1) ** zipf for rank in range(users)))
    followers: dict[int, set[int]] = {}
    for user in names:
        for followee in set(rng.choices(names, cum_weights=cum, k=rng.randint(3, 20))):
            if followee != user:
                followers.setdefault(followee, set()).add(user)
    active = set(rng.sample(names, k=max(1, int(users * active_share))))
    return Graph(users, seed, zipf, active_share, {k: sorted(v) for k, v in followers.items()}, active)


def pick_activities(graph: Graph, count: int, *, seed: int = 11, top: int = 1000, t0_us: int) -> list[Act]:
    """``count`` activities of the ``top`` accounts, popular ones more often (demo weights)."""
    rng = random.Random(seed)
    top = min(top, graph.users)
    cum = list(itertools.accumulate(1.0 / (rank + 1) ** graph.zipf for rank in range(top)))
    out = []
    for i in range(count):
        actor = rng.choices(range(top), cum_weights=cum)[0]
        out.append(Act(actor, rng.choice(list(VERBS)), i + 1, rng.randint(1, 50), t0_us + i * 1000))
    return out


def standard(users: int, activities: int, *, t0_us: int, chunk_size: int = 100) -> Workload:
    graph = build_graph(users)
    return Workload(graph, pick_activities(graph, activities, t0_us=t0_us), chunk_size)


def user_id(n: int) -> str:
    """fanout's id of synthetic user ``n`` (Stream Framework uses the integer itself)."""
    return f"u{n}"


def activity_fields(act: Act, run: int) -> dict[str, Any]:
    """The fields of ``act`` as a fanout activity event in pass ``run`` (distinct ids per pass)."""
    return {
        "actor": user_id(act.actor),
        "verb": VERBS[act.verb],
        "object": f"item:{act.object + run * 1_000_000}",
        "target": f"board:{act.target}",
        "id": f"r{run}-a{act.object}",
        "ts_us": act.ts_us + run * 1000,
    }
