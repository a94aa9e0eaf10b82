"""Pages of the follow graph (``/v1/users/{user}/followers`` and ``.../following``) with counts.

Both lists are in ascending id order and paged by a user cursor (the last id served). Followers are
read page by page from the store; whom a user follows is one partition, read whole. Counting the
followers of a huge account scans its partition (about 0.5 s per 100,000 followers measured on the
development node), so a count takes at most half the backend timeout (else ``count`` is null), and
counts of ``CACHE_FROM`` or more are kept for ``CACHE_SECONDS`` (at most ``CACHED`` accounts).
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import OrderedDict
from typing import Final

from fanout.core import Fanout
from fanout.settings import Settings

from .cursors import user_cursor
from .models import UserPage

CACHE_FROM: Final = 10_000
CACHE_SECONDS: Final = 300.0
CACHED: Final = 10_000


class GraphReader:
    def __init__(self, settings: Settings) -> None:
        self.count_seconds = settings.http_backend_timeout_seconds / 2
        self._counts: OrderedDict[str, tuple[float, int]] = OrderedDict()  # followee -> (when, count)

    async def followers(self, fanout: Fanout, user: str, limit: int, after: str | None) -> UserPage:
        ids = await fanout.store.follower_page(user, after=after, limit=limit + 1)
        return _page(ids, limit, await self._follower_count(fanout, user))

    async def following(self, fanout: Fanout, user: str, limit: int, after: str | None) -> UserPage:
        followees = await fanout.store.following(user)  # sorted
        start = 0 if after is None else bisect.bisect_right(followees, after)
        return _page(followees[start : start + limit + 1], limit, len(followees))

    async def _follower_count(self, fanout: Fanout, user: str) -> int | None:
        now = time.monotonic()
        cached = self._counts.get(user)
        if cached is not None and now - cached[0] < CACHE_SECONDS:
            return cached[1]
        try:
            count = await asyncio.wait_for(fanout.store.follower_count(user), self.count_seconds)
        except TimeoutError:
            return None
        if count >= CACHE_FROM:
            self._counts[user] = (now, count)
            self._counts.move_to_end(user)
            while len(self._counts) > CACHED:
                self._counts.popitem(last=False)
        return count


def _page(ids: list[str], limit: int, count: int | None) -> UserPage:
    more = len(ids) > limit
    ids = ids[:limit]
    return UserPage(items=ids, count=count, next=user_cursor(ids[-1]) if more else None)
