"""The acknowledgements a partition task waits for before it commits are its own (issue 10.6)."""

from __future__ import annotations

import asyncio

import pytest

from fanout.agents.producing import TaskAcks


async def test_each_partition_task_flushes_only_what_it_produced() -> None:
    acks = TaskAcks()
    slow: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    flushed: list[str] = []

    async def partition(name: str, future: asyncio.Future[None]) -> None:
        acks.begin()
        acks.add(future)
        await acks.flush()
        flushed.append(name)

    fast: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    fast.set_result(None)
    held = asyncio.ensure_future(partition("held", slow))
    await asyncio.sleep(0)
    await asyncio.wait_for(partition("free", fast), 1)  # does not wait for the other task's record
    assert flushed == ["free"]
    slow.set_result(None)
    await held
    assert flushed == ["free", "held"]


async def test_tasks_a_partition_task_starts_add_to_its_acks() -> None:
    acks = TaskAcks()
    pending: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    async def partition() -> bool:
        acks.begin()

        async def child() -> None:
            acks.add(pending)

        await asyncio.gather(child())
        flush = asyncio.ensure_future(acks.flush())
        await asyncio.sleep(0.01)
        waiting = not flush.done()
        pending.set_result(None)
        await flush
        return waiting

    assert await partition()  # the child's record was waited for


async def test_producing_outside_a_partition_task_is_an_error() -> None:
    acks = TaskAcks()
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    with pytest.raises(RuntimeError, match="outside a partition task"):
        acks.add(future)
