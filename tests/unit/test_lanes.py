"""``run_lanes`` never reports a batch done when a lane's work was cancelled by something other
than a cancellation of the call itself (a library cancelling a future the lane awaits, say): the
batch would be committed with that lane's records unapplied. It raises ``RetryBatch`` instead
(the partition task seeks back and re-delivers the batch)."""

from __future__ import annotations

import asyncio

import pytest

from fanout.agents.lanes import run_lanes
from fanout.agents.producing import RetryBatch


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
