"""Concurrency within a batch: its records in lanes by key, several lanes at once.

An agent whose events cost several store round trips one after the other applies a batch lane by
lane rather than record by record: the records are decoded first (an undecodable one is set
aside, to be dead-lettered at once), grouped into lanes by key (the follower of a follow event,
the actor and the explicit id of an activity event), each lane in record order, and up to ``concurrency``
lanes run at once (``run_lanes``). The agent's ``process`` returns when every lane finished, so
the commit after it covers only acknowledged writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable, Iterable, Sequence
from typing import Any, TypeVar

from fanout.errors import InvalidEvent

from .producing import RetryBatch

E = TypeVar("E")
T = TypeVar("T")

#: One key's records of a batch, in record order, with their decoded events.
Lane = list[tuple[Any, E]]


def group_lanes(
    records: Sequence[Any], decode: Callable[[bytes], E], keys: Callable[[E], Iterable[Hashable]], what: str
) -> tuple[list[Lane[E]], list[tuple[Any, InvalidEvent]]]:
    """The records decoded and grouped into lanes: two events share a lane when they share a key
    (``keys``: the follower of a follow event; the actor and the explicit id of an activity event),
    directly or through other events; lanes in the order of their first record, each in record
    order. Also the undecodable records, in order, with why (``what`` names the event in the
    error of a record with no value)."""
    decoded: list[tuple[Any, E, list[Hashable]]] = []
    invalid: list[tuple[Any, InvalidEvent]] = []
    parent: dict[Hashable, Hashable] = {}

    def root(key: Hashable) -> Hashable:
        while parent[key] != key:
            parent[key] = parent[parent[key]]  # path halving
            key = parent[key]
        return key

    for record in records:
        try:
            if record.value is None:
                raise InvalidEvent(f"{what}: the record has no value", reason="json")
            event = decode(record.value)
        except InvalidEvent as exc:
            invalid.append((record, exc))
            continue
        mine = list(keys(event))
        for key in mine:
            parent.setdefault(key, key)
        for key in mine[1:]:
            parent[root(key)] = root(mine[0])
        decoded.append((record, event, mine))
    lanes: dict[Hashable, Lane[E]] = {}
    for record, event, mine in decoded:
        lanes.setdefault(root(mine[0]), []).append((record, event))
    return list(lanes.values()), invalid


async def run_lanes(lanes: Sequence[T], run: Callable[[T], Awaitable[None]], concurrency: int) -> None:
    """``run`` every lane, at most ``concurrency`` at once; return when all have finished.

    The first failure cancels the lanes still running, waits for them and is raised as it is (not
    in an ``ExceptionGroup``: the partition task asks its ``retriable`` flag; of several, one that
    is not retriable); no task outlives the call, and a cancellation of the call is raised as such
    even when a lane failed meanwhile. A lane whose work was cancelled by anything else (a future
    it awaited, cancelled by a library) raises ``RetryBatch``: returning would commit the batch
    with that lane's records unapplied.
    """
    if concurrency <= 1 or len(lanes) <= 1:
        for lane in lanes:
            await _own(run(lane))
        return
    todo = iter(lanes)

    async def worker() -> None:
        for lane in todo:  # shared: each lane is taken by one worker
            await _own(run(lane))

    # plain tasks rather than a TaskGroup: on Python 3.11 a TaskGroup whose task fails while the
    # caller is being cancelled raises the failure and loses the cancellation
    tasks = [asyncio.ensure_future(worker()) for _ in range(min(concurrency, len(lanes)))]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
    finally:
        for task in tasks:
            task.cancel()
        await _settled(tasks)
    errors = [error for task in tasks if not task.cancelled() and (error := task.exception()) is not None]
    if errors:
        raise _worst(errors)  # the lane's own error, with its own traceback


async def _own(work: Awaitable[None]) -> None:
    """Await a lane's work; a cancellation that reaches it while this task was not asked to stop
    (``Task.cancelling``) came from inside the work: ``RetryBatch``, not a silent end."""
    try:
        await work
    except asyncio.CancelledError:
        task = asyncio.current_task()
        if task is None or task.cancelling():
            raise
        raise RetryBatch("a lane's work was cancelled from inside (not by a stop or a rebalance)") from None


async def _settled(tasks: Sequence[asyncio.Future[None]]) -> None:
    """Wait until every task is done, also through a cancellation of the caller (raised after)."""
    cancelled = False
    pending = [task for task in tasks if not task.done()]
    while pending:
        try:
            await asyncio.wait(pending)
        except asyncio.CancelledError:
            cancelled = True
        pending = [task for task in pending if not task.done()]
    if cancelled:
        raise asyncio.CancelledError


def _worst(errors: Sequence[BaseException]) -> BaseException:
    """The error that decides what the partition task does: the first one that is not retriable
    (it stops the agent), else the first (the batch is retried)."""
    return next((e for e in errors if not getattr(e, "retriable", False)), errors[0])
