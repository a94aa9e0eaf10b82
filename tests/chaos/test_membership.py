"""Group membership changing mid-fanout: a second planner and more writers join, a writer leaves
with SIGTERM (it finishes its batch and exits 0), the first planner is SIGKILLed and never comes
back (its partitions move to the second after the session timeout). Nothing may be lost, added or
written twice."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from .drive import crash_guard, produce, seeded
from .kafka_io import Producer, wait_drained
from .model import Model
from .report import Summaries
from .rows import read_rows, summarize
from .scale import Scale
from .stack import Stack
from .workload import celebrity_graph, celebrity_posts, celebrity_unfollows

pytestmark = [pytest.mark.chaos, pytest.mark.integration]


async def test_membership_changes_mid_fanout(
    make_stack: Callable[..., Awaitable[Stack]], scale: Scale, summaries: Summaries
) -> None:
    seed, rng = seeded()
    stack = await make_stack(FANOUT_MAX_LENGTH="100000", FANOUT_CHUNK_SIZE="25")
    model = Model(follow_activity_limit=5000)
    fleet = stack.fleet()
    planner_a = fleet.add("planner-a", "planner")
    high_a = fleet.add("writer-high-a", "writer", "--priority", "high")
    fleet.add("writer-low-a", "writer", "--priority", "low")
    fleet.add("follows", "follows")
    alive = crash_guard(fleet)
    started = time.monotonic()
    half = scale.member_posts // 2
    try:
        async with Producer(stack.prefix) as producer:
            await produce(producer, model, celebrity_graph(rng, scale.member_followers))
            await wait_drained(stack.prefix, scale.drain_seconds, alive=alive)
            await produce(producer, model, celebrity_posts(rng, half), seconds=3)
            joined = [fleet.add("planner-b", "planner"),
                      fleet.add("writer-high-b", "writer", "--priority", "high"),
                      fleet.add("writer-high-c", "writer", "--priority", "high"),
                      fleet.add("writer-low-b", "writer", "--priority", "low")]
            await produce(producer, model, celebrity_posts(rng, scale.member_posts - half, first=half), seconds=5)
            await produce(producer, model, celebrity_unfollows(rng, scale.member_followers))
            await asyncio.sleep(2)
            high_a.retired = True
            left = await high_a.kill(signal.SIGTERM)
            planner_a.retired = True
            await planner_a.kill(signal.SIGKILL)
            await produce(producer, model, celebrity_posts(rng, 5, first=scale.member_posts), seconds=1)
        drained = await wait_drained(stack.prefix, scale.drain_seconds, alive=alive, trace=stack.log_dir / "lag.log")
    finally:
        await fleet.close()
    result = summarize(await read_rows(stack.keyspace), model)
    summaries.add(
        "membership", seed=seed, joined=len(joined), left_code=left, killed=1, lost=result.lost, extra=result.extra,
        dup=result.dup, wrong=result.wrong, crashes=len(fleet.crashes), rows=result.rows, drain_s=drained,
        secs=time.monotonic() - started, logs=stack.log_dir,
    )
    assert left == 0, f"writer-high-a did not leave cleanly on SIGTERM (exit {left}):\n{high_a.tail()}"
    assert not fleet.crashes, "agents exited on their own:\n" + "\n".join(fleet.crashes[:5])
    assert result.exact, result.report()
