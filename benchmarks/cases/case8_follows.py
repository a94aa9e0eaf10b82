"""Case 8, follows: follow events applied per second by the follows agent, end to end.

``N`` follow events go to the ``follows`` topic (key = follower) of the running pipeline session;
``--follows-workers`` processes of ``python -m fanout worker follows`` apply them (record the
edge, copy the followee's newest activities into the follower's feeds) and commit. A pass ends
when the follows group has committed past every event; follows/s = N / (last commit - first send).

Workload: the standard graph's edges of its first users, in order (so followees are drawn with
the graph's Zipf weights), each pass under new follower names (``f<pass>-u<n>``), so every event
is a new edge; before the passes, each posting account's own feed gets the standard workload's
activities (the history a follow copies in). The followees are named apart (``c8-u<n>``): the
accounts ``u<n>`` of the shared session have posted in every earlier pipeline case (each pass
writes the author's own feed), so following them copied as many more rows as cases had run before
(follows/s 699-1,052 on a fresh stack, 219-356 after cases 3-7).
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

import msgspec

from benchmarks.harness.context import Context
from benchmarks.harness.inputs import activity
from benchmarks.harness.pipeline import Session, session
from benchmarks.harness.stats import median, row
from benchmarks.harness.tracking import POLL_S
from benchmarks.harness.workload import Workload, user_id
from fanout import FollowEvent, TimelineWrite
from fanout.codec import encode

#: The processes whose CPU a pass records, by role (``Workers.cpu``), and how the table names them.
#: Followee names of this case: accounts no other case posts as (their history is exactly ``author_history``).
FOLLOWEE = "c8-"
CPU_ROLES = {"follows": "follows agents'", "cassandra": "Cassandra's", "kafka": "Kafka's", "bench": "the bench's"}


def follow_edges(wl: Workload, count: int) -> list[tuple[int, int]]:
    """(follower, followee) of the graph's first users, in user order, ``count`` of them."""
    following: dict[int, list[int]] = {}
    for followee, followers in wl.graph.followers.items():
        for follower in followers:
            following.setdefault(follower, []).append(followee)
    edges = []
    for follower in sorted(following):
        edges += [(follower, followee) for followee in sorted(following[follower])]
        if len(edges) >= count:
            break
    return edges[:count]


async def author_history(sess: Session, wl: Workload) -> int:
    """Each posting account's own feed gets the workload's activities (what a follow copies)."""
    writes = []
    for act in wl.activities:
        a = activity(act, 800)
        a = msgspec.structs.replace(a, actor=FOLLOWEE + a.actor)
        writes.append(TimelineWrite(f"user:{a.actor}", a, a.ts))
    await sess.store.apply(writes)
    return len(writes)


async def follows_pass(
    sess: Session, edges: list[tuple[int, int]], run: int, limit_s: float
) -> tuple[float, dict[str, float]]:
    """(seconds from the first send to the commit past the last event, CPU seconds of every process
    by role: the follows agents, Cassandra, Kafka, the bench) of one pass of ``edges`` under
    follower names of pass ``run``."""
    topic = sess.settings.topic("follows")
    group = sess.groups["follows"]
    now = datetime.now(UTC)
    cpu0 = sess.workers.cpu()
    t0 = time.perf_counter()
    pending = []
    for follower, followee in edges:
        event = FollowEvent(follower=f"f{run}-{user_id(follower)}", followee=FOLLOWEE + user_id(followee), time=now)
        pending.append(await sess.producer.send(topic, value=encode(event), key=event.follower.encode()))
    last: dict[int, int] = {}
    for fut in pending:
        md = await fut
        last[md.partition] = max(last.get(md.partition, -1), md.offset)
    deadline = time.monotonic() + limit_s
    while True:
        sess.workers.check_alive()
        done = [sess.committed_at(group, topic, p, o) for p, o in last.items()]
        if all(t is not None for t in done):
            cpu = {role: seconds - cpu0.get(role, 0.0) for role, seconds in sess.workers.cpu().items()}
            return max(t for t in done if t is not None) - t0, cpu
        if time.monotonic() > deadline:
            raise RuntimeError(f"the follows agents did not commit {len(edges)} follows in {limit_s:.0f}s; "
                               f"logs in {sess.ctx.work}/workers")
        await asyncio.sleep(POLL_S)


async def run(ctx: Context) -> dict[str, Any]:
    """Follows: follow events applied per second by the follows agents, end to end."""
    wl = ctx.standard_workload()
    count = 5_000 if not ctx.quick else 1_500
    edges = follow_edges(wl, count)
    sess = await session(ctx, 100)
    history = await author_history(sess, wl)
    await sess.start_follows(ctx.follows_workers)
    rates: list[float] = []
    cpu_per_follow: dict[str, list[float]] = {role: [] for role in CPU_ROLES}
    for i in range(ctx.repeats):
        secs, cpu = await follows_pass(sess, edges, 8000 + i, limit_s=max(300.0, count / 20))
        rates.append(len(edges) / secs)
        for role, per_follow in cpu_per_follow.items():
            per_follow.append(cpu.get(role, 0.0) / len(edges) * 1e3)
        spent = ", ".join(f"{role} {ms[-1]:.2f}" for role, ms in cpu_per_follow.items())
        ctx.log(f"case 8: pass {i + 1}/{ctx.repeats}: {len(edges):,} follows in {secs:.1f}s = "
                f"{rates[-1]:,.0f}/s (ms of CPU per follow: {spent})")
    followees = len({f for _, f in edges})
    return {
        "title": "Follows: follow events applied per second by the follows agents, end to end",
        "inputs": {"follows_per_pass": len(edges), "distinct_followees": followees,
                   "followers_per_pass": len({f for f, _ in edges}),
                   "history_activities": history, "follows_workers": ctx.follows_workers,
                   "follows_partitions": sess.settings.follows_partitions,
                   "follow_activity_limit": sess.settings.follow_activity_limit},
        "rows": [row("follows applied/s", rates, unit="follows/s")]
        + [row(f"{CPU_ROLES[role]} CPU per follow", ms, unit="ms") for role, ms in cpu_per_follow.items()],
        "summary": {"follows_per_s": median(rates)},
        "summary_runs": {"follows_per_s": len(rates)},
        "notes": ["From the first follow event sent to the poll that saw the follows group's commit past the "
                  f"last one (poll every {POLL_S * 1000:.0f} ms). Each follow records the edge (both tables), reads "
                  "the follower's last activity and copies the followee's feed (its history) into the follower's."],
    }
