"""``run_lanes``: of several lane failures the one that stops the agent is raised; a cancellation
of the call stays a cancellation, even when a lane fails meanwhile; and a batch is never reported
done when a lane's work was cancelled by something other than the call (a library cancelling a
future the lane awaits, say): that would commit the lane's records unapplied, so it raises
``RetryBatch`` (the partition task seeks back and re-delivers the batch)."""

from __future__ import annotations

import asyncio

import pytest

from fanout.agents.lanes import run_lanes
from fanout.agents.producing import RetryBatch
from fanout.errors import StoreError


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_lane_cancelled_from_inside_fails_the_batch(concurrency: int) -> None:
    applied: list[str] = []
    foreign: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def run(lane: str) -> None:
        if lane == "b":
            foreign.cancel()  # someone else cancels what this lane waits for
            await foreign
        await asyncio.sleep(0)
        applied.append(lane)

    with pytest.raises(RetryBatch, match="cancelled"):
        await run_lanes(["a", "b", "c"], run, concurrency)
    assert "b" not in applied
    assert asyncio.all_tasks() == {asyncio.current_task()}  # nothing left running


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_a_cancellation_of_the_call_stays_a_cancellation(concurrency: int) -> None:
    started = asyncio.Event()

    async def run(lane: str) -> None:
        started.set()
        await asyncio.Event().wait()

    call = asyncio.ensure_future(run_lanes(["a", "b"], run, concurrency))
    await started.wait()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert asyncio.all_tasks() == {asyncio.current_task()}


async def test_of_several_lane_failures_the_one_that_stops_the_agent_is_raised() -> None:
    async def run(lane: str) -> None:
        await asyncio.sleep(0)
        raise StoreError(f"{lane} failed", retriable=lane == "retriable")

    with pytest.raises(StoreError, match="fatal failed"):
        await run_lanes(["retriable", "fatal"], run, 4)


async def test_a_cancelled_call_is_cancelled_even_when_a_lane_fails_meanwhile() -> None:
    go = asyncio.Event()

    async def run(lane: str) -> None:
        if lane == "waits":
            await asyncio.Event().wait()
        await go.wait()
        raise StoreError("a lane failed while the partition was revoked", retriable=True)

    call = asyncio.ensure_future(run_lanes(["waits", "fails"], run, 4))
    await asyncio.sleep(0.01)
    go.set()
    call.cancel()  # the failing lane runs in the same turn as the cancellation
    with pytest.raises(asyncio.CancelledError):
        await call
