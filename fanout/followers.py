"""Who receives an activity, and at which priority.

A ``FollowerSource`` streams an actor's followers as pages of ``(priority, feed owners)``.
The default, ``ActiveWindowPolicy``, calls a follower HIGH when they were active (read a
feed or published) within a window, LOW otherwise, reading the follow graph page by page:
no point lookup per follower and no full follower list in memory.

Any callable with the old ``get_user_follower_ids`` shape plugs in through
``follower_hook``::

    def get_user_follower_ids(user_id):  # -> {Priority.HIGH: [...], Priority.LOW: [...]}
        ...
    fanout = Fanout(store, followers=follower_hook(get_user_follower_ids))
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from enum import StrEnum
from typing import Protocol, TypeAlias, cast

from .store import PrioritySplitStore, Store, class_defines


class Priority(StrEnum):
    HIGH = "high"
    LOW = "low"


FollowerPage: TypeAlias = tuple[Priority, list[str]]


class FollowerSource(Protocol):
    def pages(self, actor: str, now: int) -> AsyncIterator[FollowerPage]: ...


class ActiveWindowPolicy:
    """HIGH = active in the last ``window`` microseconds (read a feed or published)."""

    def __init__(self, store: Store, *, page_size: int = 1000) -> None:
        self.store = store
        self.page_size = page_size
        self._split = cast(PrioritySplitStore, store) if class_defines(store, "priority_pages") else None

    async def pages(self, actor: str, now: int) -> AsyncIterator[FollowerPage]:
        if self._split is not None:  # the store splits the pages itself (in memory)
            async for high, low in self._split.priority_pages(actor, now, self.page_size):
                if high:
                    yield Priority.HIGH, high
                if low:
                    yield Priority.LOW, low
            return
        async for rows in self.store.followers(actor, page_size=self.page_size):
            high = [r.follower for r in rows if r.active_until > now]
            low = [r.follower for r in rows if r.active_until <= now]
            if high:
                yield Priority.HIGH, high
            if low:
                yield Priority.LOW, low


#: What a hook returns: ``{Priority.HIGH: [...], Priority.LOW: [...]}`` or the same keyed "high"/"low".
#: ``Mapping`` is invariant in its key, so the union of the two concrete shapes is spelled out: a hook
#: typed ``-> dict[Priority, list[str]]`` and one typed ``-> dict[str, list[str]]`` both fit.
HookResult = Mapping[Priority, Iterable[str]] | Mapping[str, Iterable[str]]


class follower_hook:
    """Adapt ``fn(actor) -> {priority: follower ids}`` (sync or async) to a FollowerSource."""

    def __init__(self, fn: Callable[[str], HookResult | Awaitable[HookResult]], *, page_size: int = 1000):
        self.fn = fn
        self.page_size = page_size

    async def pages(self, actor: str, now: int) -> AsyncIterator[FollowerPage]:
        result = self.fn(actor)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Mapping):
            raise TypeError(f"follower hook {self.fn!r} returned {type(result).__name__}, not a mapping "
                            "of priority -> follower ids")
        for priority, ids in result.items():
            page: list[str] = []
            for follower in ids:
                page.append(follower)
                if len(page) >= self.page_size:
                    yield Priority(priority), page
                    page = []
            if page:
                yield Priority(priority), page
