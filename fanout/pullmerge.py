"""Hybrid fanout, the reading side: one read path for every reader (``Fanout.read`` and the HTTP
feed endpoint), which merges the posts of pulled accounts (``fanout.pull``) into timelines.

A page of a followers' feed (``settings.feed_kinds``, e.g. ``timeline:7``) is the page of the
union of

* the feed itself (what was pushed into it), and
* for each account the user follows now that is pulled, its user feed's entries at or after the
  account's ``since``,

newest first by key (time, id), each key once (an entry pushed and also merged is one entry). Every
source is read with the same cursor bounds and ``limit``, so the page is exact: the ``limit``
newest (or, with ``after``, the ``limit`` closest above it) of the union. The semantics are the
pushed entries': a removed post is gone from the user feed (and its pushed copies are deleted);
an unfollowed account is no longer among the follows, so its posts stop appearing (and its pushed
copies are deleted by the unfollow).

A read costs more when any account is pulled: the registry of pulled accounts (one small
partition), then whether the user follows each (a point read per pulled account, in parallel, up
to ``EDGE_READS`` of them; beyond, the user's follows), plus one feed read per pulled account
followed. With none pulled it is the plain feed read and one registry read.

Merged entries come from the account's user feed, which is trimmed to ``max_length`` like every
feed; so a timeline walked to its end can hold up to ``max_length`` entries per pulled account
followed beyond its own ``max_length``, and, for a follower who followed a pulled account after it
was pulled, its posts since ``since`` (a pushed follow copies the newest ``follow_activity_limit``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from .activity import Activity
from .feeds import feed_id
from .settings import Settings
from .store import Key, PullState, Store

EDGE_READS = 16  # up to this many pulled accounts, a read checks each edge instead of reading all follows


class MergedReader:
    """Reads feeds, merging pulled accounts into followers' feeds."""

    def __init__(self, store: Store, settings: Settings, *, enabled: bool = True) -> None:
        self.store = store
        self.settings = settings
        self.enabled = enabled and settings.pull_threshold > 0

    async def read(
        self, kind: str, user: str, *, limit: int, before: Key | None = None, after: Key | None = None
    ) -> list[Activity]:
        """A page of ``kind:user``, newest first (``before``/``after``: exclusive key bounds)."""
        feed = feed_id(kind, user)
        if not self.enabled or kind not in self.settings.feed_kinds or limit <= 0:
            return await self.store.read(feed, limit=limit, before=before, after=after)
        merged = await self._followed_pulled(user)
        if not merged:
            return await self.store.read(feed, limit=limit, before=before, after=after)
        pages = await asyncio.gather(
            self.store.read(feed, limit=limit, before=before, after=after),
            *(self._pulled(account, state, limit, before, after) for account, state in merged),
        )
        return merge_pages(pages, limit, newest=after is None)

    async def _followed_pulled(self, user: str) -> list[tuple[str, PullState]]:
        """The pulled accounts ``user`` follows now: an edge read per pulled account while they are
        few, else the user's follows (one partition) intersected with them."""
        pulled = await self.store.pulled_accounts()
        if not pulled:
            return []
        if len(pulled) <= EDGE_READS:
            accounts = sorted(pulled)
            edges = await asyncio.gather(*(self.store.follow_edge(user, a) for a in accounts))
            followed = [a for a, edge in zip(accounts, edges, strict=True) if edge is not None and edge.following]
        else:
            followed = [a for a in await self.store.following(user) if a in pulled]
        return [(a, pulled[a]) for a in followed]

    async def _pulled(
        self, account: str, state: PullState, limit: int, before: Key | None, after: Key | None
    ) -> list[Activity]:
        floor: Key = (state.since, "")  # below every key at or after `since` (ids are never empty)
        own = feed_id(self.settings.user_feed_kind, account)
        if after is None:  # the newest below `before`, then those at or after `since`
            return [a for a in await self.store.read(own, limit=limit, before=before) if a.key > floor]
        return await self.store.read(own, limit=limit, before=before, after=max(after, floor))


def merge_pages(pages: Sequence[Sequence[Activity]], limit: int, *, newest: bool = True) -> list[Activity]:
    """The union of pages (each newest first), each key once, newest first: the ``limit`` newest,
    or with ``newest=False`` (an ``after`` page) the ``limit`` oldest."""
    by_key = {a.key: a for page in pages for a in page}
    ordered = [by_key[k] for k in sorted(by_key, reverse=True)]
    return ordered[:limit] if newest else ordered[-limit:]
