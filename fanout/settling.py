"""Awaiting at once: every awaitable settled before the first failure is raised.

The planner and the follows agent run independent store calls together (one round trip for all
of them instead of one each); none may be left running when one fails, since a retry would run
it again beside it. ``asyncio.gather(..., return_exceptions=True)`` settles them all; ``result``
raises what failed, in the order of the awaitables.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TypeVar

T = TypeVar("T")


def result(outcome: T | BaseException) -> T:
    """An outcome of ``asyncio.gather(..., return_exceptions=True)``, or its failure raised."""
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


async def all_settled(awaitables: Iterable[Awaitable[T]]) -> list[T]:
    """Run the awaitables at once (the store bounds its requests in flight); their results in
    order, every one awaited before the first failure is raised."""
    return [result(outcome) for outcome in await asyncio.gather(*awaitables, return_exceptions=True)]
