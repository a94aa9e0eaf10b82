"""The in-memory twin's follow graph (``MemoryStore``'s part of ``Store``): edges both ways, each
follower's ``active_until`` per followee, each user's last activity.

Cassandra's rules: an edge is written at ``at`` and the newest write wins, an unfollow a tie; an
unfollowed edge's row stays (``on`` False), as the row does in Cassandra. Follower pages are the
edges' keys taken when the pages start, ``page_size`` at a time, each checked when its page is
cut (follows may change between pages; an edge turned off leaves its page short). A followee
whose edges are all on (the edges turned off are kept by followee, with their timestamps) has its
pages cut as they are, without a look at each edge: the eager mode's follower pages cost a slice,
not a lookup a follower. An edge's row is never deleted: a method that ever deletes one must keep the edges off too.
"""

from __future__ import annotations

import heapq
from collections.abc import AsyncIterator, Collection, Iterator

from .store import Edge, FollowerRow, PriorityPage

_FEW_OFF = 256  # a followee's edges off that ``unfollowed`` walks rather than the followers asked about


def _greater(a: int | None, b: int | None) -> int | None:
    """The greater partition, no partition (None) being less than every one."""
    return b if a is None else a if b is None else max(a, b)


class MemoryGraph:
    """Dictionaries of the follow graph; a mixin of ``MemoryStore``."""

    def __init__(self) -> None:
        self._edges: dict[str, dict[str, tuple[int, bool]]] = {}  # followee -> follower -> (at, on)
        self._edges_off: dict[str, dict[str, int]] = {}  # followee -> its edges off: follower -> at (absent: none)
        self._following: dict[str, dict[str, Edge]] = {}  # follower -> followee -> its edge
        self._active_until: dict[str, dict[str, int]] = {}  # followee -> follower -> until
        self._last_active: dict[str, int] = {}

    async def set_follow(
        self, follower: str, followee: str, following: bool, at: int, active_until: int = 0, *,
        source: int | None = None,
    ) -> None:
        edges = self._edges.setdefault(followee, {})
        old = edges.get(follower)
        if old is not None and old[0] > at:
            return  # a newer write already decided this edge
        if old is not None and old[0] == at:  # a tie, settled cell by cell as Cassandra settles it:
            source = _greater(source, self._following[follower][followee].source)  # the greater partition
            following = following and old[1]  # and the unfollow (a tombstone wins)
        edges[follower] = (at, following)
        self._following.setdefault(follower, {})[followee] = Edge(following, at, source)
        if not following:
            self._edges_off.setdefault(followee, {})[follower] = at
            return
        off = self._edges_off.get(followee)
        if off is not None and off.pop(follower, None) is not None and not off:
            del self._edges_off[followee]
        until = self._active_until.setdefault(followee, {})
        until[follower] = max(active_until, until.get(follower, 0))

    async def following(self, user: str) -> list[str]:
        return sorted(f for f, edge in self._following.get(user, {}).items() if edge.following)

    async def follow_edge(self, follower: str, followee: str) -> Edge | None:
        return self._following.get(follower, {}).get(followee)

    async def follow_edges(self, follower: str, followees: Collection[str] | None = None) -> dict[str, Edge]:
        edges = self._following.get(follower, {})
        return {f: edge for f, edge in edges.items() if followees is None or f in followees}

    async def followers(self, followee: str, *, page_size: int) -> AsyncIterator[list[FollowerRow]]:
        until = self._active_until.get(followee, {})
        for ids in self._follower_slices(followee, page_size):
            yield [FollowerRow(follower, until.get(follower, 0)) for follower in ids]

    async def unfollowed(self, followee: str, followers: Collection[str]) -> dict[str, int]:
        off = self._edges_off.get(followee)
        if not off:  # the eager mode's usual case: no look at the followers
            return {}
        if len(off) <= _FEW_OFF:  # the usual side to walk: a few edges off, each looked up in ``followers``
            return {f: at for f, at in off.items() if f in followers}
        return {f: at for f in followers if (at := off.get(f)) is not None}

    def _follower_slices(self, followee: str, page_size: int) -> Iterator[list[str]]:
        """The followee's followers in pages of up to ``page_size`` (see the module docstring):
        a page of a followee with no edge off is its slice of the keys as it is."""
        edges = self._edges.get(followee, {})
        keys = list(edges)
        get = edges.get
        size = max(page_size, 1)
        for start in range(0, len(keys), size):
            if followee in self._edges_off:
                ids = [f for f in keys[start : start + size] if (edge := get(f)) is not None and edge[1]]
            else:  # every edge on now: so is every key of the slice (an edge's row is never deleted)
                ids = keys[start : start + size]
            if ids:
                yield ids

    async def priority_pages(self, followee: str, now: int, page_size: int) -> AsyncIterator[PriorityPage]:
        """``followers`` split as ``ActiveWindowPolicy`` splits it, (HIGH, LOW) ids per page, with
        no ``FollowerRow`` per follower: the same pages in the same order."""
        if type(self).followers is not MemoryGraph.followers:  # a subclass's pages, split here
            async for rows in self.followers(followee, page_size=page_size):
                split = [r.follower for r in rows if r.active_until > now]
                yield split, [r.follower for r in rows if r.active_until <= now]
            return
        until = self._active_until.get(followee, {}).get
        for ids in self._follower_slices(followee, page_size):
            yield [f for f in ids if until(f, 0) > now], [f for f in ids if until(f, 0) <= now]

    async def follower_page(self, followee: str, *, after: str | None, limit: int) -> list[str]:
        edges = self._edges.get(followee, {})
        return heapq.nsmallest(limit, (f for f, (_, on) in edges.items() if on and (after is None or f > after)))

    async def follower_count(self, followee: str) -> int:
        return len(self._edges.get(followee, {})) - len(self._edges_off.get(followee, ()))

    async def last_active(self, user: str) -> int:
        return self._last_active.get(user, 0)

    async def set_active(self, user: str, active_until: int, at: int) -> None:
        self._last_active[user] = max(at, self._last_active.get(user, 0))
        for followee in await self.following(user):
            until = self._active_until.setdefault(followee, {})
            until[user] = max(active_until, until.get(user, 0))
