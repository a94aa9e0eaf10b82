"""Concurrency within a batch: its records in lanes by key, several lanes at once.

An agent whose events cost several store round trips one after the other applies a batch lane by
lane rather than record by record: the records are decoded first (an undecodable one is set
aside, to be dead-lettered at once), grouped into one lane per key (the follower of a follow
event, the actor of an activity event), each lane in record order, and up to ``concurrency``
lanes run at once (``run_lanes``). The agent's ``process`` returns when every lane finished, so
the commit after it covers only acknowledged writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Sequence
from typing import Any, TypeVar

from fanout.errors import InvalidEvent

E = TypeVar("E")
T = TypeVar("T")

#: One key's records of a batch, in record order, with their decoded events.
Lane = list[tuple[Any, E]]


def group_lanes(
    records: Sequence[Any], decode: Callable[[bytes], E], key: Callable[[E], Hashable], what: str
) -> tuple[list[Lane[E]], list[tuple[Any, InvalidEvent]]]:
    """The records decoded and grouped by ``key``: one lane per key, in the order of each key's
    first record, each lane in record order; and the undecodable records, in order, with why
    (``what`` names the event in the error of a record with no value)."""
    lanes: dict[Hashable, Lane[E]] = {}
    invalid: list[tuple[Any, InvalidEvent]] = []
    for record in records:
        try:
            if record.value is None:
                raise InvalidEvent(f"{what}: the record has no value", reason="json")
            event = decode(record.value)
        except InvalidEvent as exc:
            invalid.append((record, exc))
            continue
        lanes.setdefault(key(event), []).append((record, event))
    return list(lanes.values()), invalid


async def run_lanes(lanes: Sequence[T], run: Callable[[T], Awaitable[None]], concurrency: int) -> None:
    """``run`` every lane, at most ``concurrency`` at once; return when all have finished.

    The first failure cancels the lanes still running, waits for them and is raised as it is (not
    in an ``ExceptionGroup``: the partition task asks its ``retriable`` flag); no task outlives
    the call, also when the call itself is cancelled.
    """
    if concurrency <= 1 or len(lanes) <= 1:
        for lane in lanes:
            await run(lane)
        return
    todo = iter(lanes)

    async def worker() -> None:
        for lane in todo:  # shared: each lane is taken by one worker
            await run(lane)

    try:
        async with asyncio.TaskGroup() as group:
            for _ in range(min(concurrency, len(lanes))):
                group.create_task(worker())
    except BaseExceptionGroup as failed:
        raise failed.exceptions[0] from None  # the lane's own error, with its own traceback
