"""fanout's inputs made from the synthetic workload: activity events, activities, follow edges."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from fanout import Activity, ActivityEvent, TimelineWrite

from .workload import Act, Workload, activity_fields, user_id

Edge = tuple[str, str, int]  # (followee, follower, active_until in microseconds; 0: inactive)


def timeline_writes(wl: Workload, run: int) -> list[TimelineWrite]:
    """The timeline writes of pass ``run`` as fanout's store takes them (``rawload.timeline_rows``'
    rows): every follower feed and the author's own feed of every activity, in pass order."""
    writes: list[TimelineWrite] = []
    for act in wl.activities:
        a = activity(act, run)
        writes += [TimelineWrite(f"timeline:{user_id(u)}", a, a.ts) for u in wl.graph.followers.get(act.actor, [])]
        writes.append(TimelineWrite(f"user:{a.actor}", a, a.ts))
    return writes


def events(acts: Sequence[Act], run: int) -> list[ActivityEvent]:
    """fanout activity events of a pass (ids unique per pass, times from the workload)."""
    out = []
    for act in acts:
        f = activity_fields(act, run)
        out.append(
            ActivityEvent(
                actor=f["actor"], verb=f["verb"], object=f["object"], target=f["target"], id=f["id"],
                time=datetime.fromtimestamp(f["ts_us"] / 1e6, UTC),
            )
        )
    return out


def activity(act: Act, run: int) -> Activity:
    """``act`` as the activity fanout stores in pass ``run``."""
    f = activity_fields(act, run)
    return Activity(id=f["id"], actor=f["actor"], verb=f["verb"], object=f["object"], ts=f["ts_us"],
                    target=f["target"])


def edges_of(workload: Workload, now_us: int, window_us: int) -> list[Edge]:
    """Every follow edge into a posting actor; an active follower's edge stays active ``window_us``."""
    rows = []
    for actor in workload.actors:
        for follower in workload.graph.followers.get(actor, []):
            until = now_us + window_us if follower in workload.graph.active else 0
            rows.append((user_id(actor), user_id(follower), until))
    return rows
