"""How big each scenario is: ``full`` under ``make chaos``, a bounded ``slice`` under ``make test``.

``FANOUT_CHAOS_SCALE=full|slice`` picks one (default: slice).
"""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Scale:
    name: str
    # kill storm
    users: int
    authors: int
    adds_per_author: tuple[int, int]
    prolific_authors: int
    follows_per_user: tuple[int, int]
    late_followers: int
    follow_limit: int
    kills_per_role: int
    storm_seconds: float  # production of the first phase is spread over this long
    # broker / Cassandra restarts
    restart_followers: int
    restart_posts: int
    outage_seconds: float
    # fuzz
    bad_events: int
    # membership and supervisor
    member_followers: int
    member_posts: int
    drain_seconds: float  # the longest a scenario waits for lag 0


FULL = Scale(
    name="full",
    users=300, authors=50, adds_per_author=(8, 30), prolific_authors=2, follows_per_user=(6, 20),
    late_followers=40, follow_limit=40, kills_per_role=20, storm_seconds=240,
    restart_followers=4000, restart_posts=50, outage_seconds=35,
    bad_events=10_000,
    member_followers=3000, member_posts=40,
    drain_seconds=900,
)

SLICE = Scale(
    name="slice",
    users=60, authors=12, adds_per_author=(4, 12), prolific_authors=1, follows_per_user=(3, 8),
    late_followers=10, follow_limit=20, kills_per_role=3, storm_seconds=30,
    restart_followers=1000, restart_posts=20, outage_seconds=15,
    bad_events=1_000,
    member_followers=600, member_posts=20,
    drain_seconds=300,
)


def current() -> Scale:
    wanted = os.environ.get("FANOUT_CHAOS_SCALE", "slice")
    for scale in (FULL, SLICE):
        if scale.name == wanted:
            return scale
    raise ValueError(f"FANOUT_CHAOS_SCALE={wanted!r}: expected 'full' or 'slice'")
