"""Kill storm: SIGKILLs of every agent role at random moments while a social workload is produced.

Agents run as real processes (a planner, two high writers - one with static membership - a low
writer and the follows agent) and are SIGKILLed and restarted by pid, ``kills_per_role`` times per
role while the first phase is produced and a quarter as many while the late follows are, during
start-up, rebalances, fetches, writes and commits. The workload has follows,
unfollows, re-follows, removes by id and by content, before their add and under another key,
duplicates and late follows. Afterwards every row of every feed equals the reference model:
nothing lost, nothing extra, nothing duplicated, and no agent exited on its own.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import pytest

from .drive import KillStorm, crash_guard, produce_paced, seeded
from .kafka_io import Producer, wait_drained
from .model import Model
from .report import Summaries
from .rows import read_rows, summarize
from .scale import Scale
from .stack import Stack
from .workload import Social, record

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

ROLES = ("planner", "writer-high", "writer-low", "follows")


async def test_kill_storm(make_stack: Callable[..., Awaitable[Stack]], scale: Scale, summaries: Summaries) -> None:
    seed, rng = seeded()
    stack = await make_stack(
        FANOUT_FOLLOW_ACTIVITY_LIMIT=str(scale.follow_limit),
        FANOUT_MAX_LENGTH="100000",  # no feed comes near it: trimming never makes the expectation ambiguous
        FANOUT_CHUNK_SIZE="20",
        FANOUT_BATCH_MAX_RECORDS="50",
        FANOUT_FOLLOWS_BATCH_MAX_RECORDS="50",  # as small as the others: many commits between kills
    )
    model = Model(follow_activity_limit=scale.follow_limit)
    social = Social(rng, scale, int(time.time() * 1_000_000))
    fleet = stack.fleet()
    quick = ("--session-timeout-ms", "6000")
    fleet.add("planner", "planner", *quick)
    fleet.add("writer-high-0", "writer", "--priority", "high", "--instance-id", f"{stack.tag}-high-0", *quick)
    fleet.add("writer-high-1", "writer", "--priority", "high", *quick)
    fleet.add("writer-low", "writer", "--priority", "low", *quick)
    fleet.add("follows", "follows", *quick)
    alive = crash_guard(fleet)
    started = time.monotonic()
    quota, late_quota = scale.kills_per_role, max(1, scale.kills_per_role // 4)
    storms = [KillStorm(fleet, rng, ROLES, quota, mean_gap=scale.storm_seconds * 0.9 / quota)]
    trace = stack.log_dir / "lag.log"
    try:
        async with Producer(stack.prefix) as producer:
            first = social.phase1()
            record(model, first, await produce_paced(producer, first, scale.storm_seconds))
            await storms[0].wait()
            await wait_drained(stack.prefix, scale.drain_seconds, alive=alive, trace=trace)
            late = social.phase2()
            storms.append(KillStorm(fleet, rng, ROLES, late_quota, mean_gap=scale.storm_seconds / 4 / late_quota))
            record(model, late, await produce_paced(producer, late, scale.storm_seconds / 4))
            events = len(first) + len(late)
        await storms[1].wait()
        drained = await wait_drained(stack.prefix, scale.drain_seconds, alive=alive, trace=trace)
    finally:
        for storm in storms:
            await storm.cancel()
        await fleet.close()
    result = summarize(await read_rows(stack.keyspace), model)
    kills = fleet.kills()
    summaries.add(
        "storm", seed=seed, kills=kills, lost=result.lost, extra=result.extra, dup=result.dup, wrong=result.wrong,
        crashes=len(fleet.crashes), events=events, rows=result.rows, feeds=result.feeds,
        drain_s=drained, secs=time.monotonic() - started, logs=stack.log_dir,
    )
    assert all(kills.get(role, 0) >= scale.kills_per_role for role in ROLES), kills
    assert not fleet.crashes, "agents exited on their own:\n" + "\n".join(fleet.crashes)
    assert result.exact, result.report()
