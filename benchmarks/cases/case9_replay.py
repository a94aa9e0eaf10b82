"""Case 9, replay: events per second of a full ``fanout replay`` into an empty store.

``benchmarks/replay_rate.py`` (``replay_once``) produces a follow graph and its activities to fresh
topics, replays both topics from the beginning into a fresh keyspace (the follows agent's and the
planner's code, chunks written in-process by the writer) and drops both afterwards; each run
repeats all of it. Smaller than the script's default workload, so that three runs fit in a bench.
"""

from __future__ import annotations

from typing import Any

from benchmarks.harness.context import Context
from benchmarks.harness.stats import median, row
from benchmarks.replay_rate import replay_events, replay_once


async def run(ctx: Context) -> dict[str, Any]:
    """Replay: events/s of a full replay into an empty store."""
    users, activities = (600, 240) if not ctx.quick else (300, 120)
    events = replay_events(users, activities)
    summaries = []
    for i in range(ctx.repeats):
        (s,) = await replay_once(ctx.settings, events)
        summaries.append(s)
        ctx.log(f"case 9: run {i + 1}/{ctx.repeats}: {s.events:,} events ({s.follows:,} follows, {s.activities:,} "
                f"activities), {s.rows:,} rows in {s.elapsed:.1f}s = {s.events_per_s:,.0f} events/s")
        if s.events != len(events) or s.invalid:
            raise RuntimeError(f"the replay processed {s.events} of {len(events)} events ({s.invalid} invalid)")
    follows = sum(1 for e in events if e[0] == "follows")
    return {
        "title": "Replay: a full replay of both topics into an empty store",
        "inputs": {"users": users, "follow_events": follows, "activity_events": len(events) - follows,
                   "rows_per_replay": summaries[0].rows, "workload": "benchmarks/replay_rate.py replay_events"},
        "rows": [row("replay events/s", [s.events_per_s for s in summaries], unit="events/s"),
                 row("replay timeline rows/s", [s.rows_per_s for s in summaries])],
        "summary": {"replay_events_per_s": median([s.events_per_s for s in summaries])},
        "summary_runs": {"replay_events_per_s": len(summaries)},
        "notes": ["Each run: fresh topics and keyspace, events produced first (untimed), then `replay` with "
                  "default options from the beginning; elapsed as the replay reports it (its summary)."],
    }
