"""Reading feeds over HTTP, and the one place where a reader is marked active.

Every ``GET /v1/feeds/{kind}/{user}`` goes through ``FeedReader.page``. Reading one of the
followers' feed kinds (``settings.feed_kinds``, e.g. ``timeline``) is what a user does when they
come back, so it marks the user active (HIGH priority for the fanout of the accounts they follow)
through the core's policy, which writes at most about twice a day per user. This process also
remembers whom it marked in the last ``MARK_EVERY_SECONDS`` (at most ``MARKED_USERS`` of them), so a
user paging through a feed costs no extra store request at all. Reading someone's ``user`` feed
(their own posts: a profile page) marks nobody: the reader is not the owner.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Final

from fanout.core import Fanout
from fanout.settings import Settings
from fanout.store import Key

from .cursors import position_cursor
from .models import FeedPage, activity_doc

MARK_EVERY_SECONDS: Final = 3600.0
MARKED_USERS: Final = 100_000


class FeedReader:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._marked: OrderedDict[str, float] = OrderedDict()  # user -> when this process marked them

    async def page(
        self, fanout: Fanout, kind: str, user: str, limit: int, before: Key | None, served: int | None = 0
    ) -> FeedPage:
        """Up to ``limit`` entries older than ``before`` (newest first) and the next cursor; the
        walk ends after the feed's newest ``max_length`` (``served`` so far; None: unknown, no end).
        Past them are only rows the next trim deletes: they arrived since the last trim and are
        not the next-newest (the trim before deleted some newer ones)."""
        if kind in self.settings.feed_kinds:
            await self._mark_active(fanout, user)
        room = limit if served is None else min(limit, self.settings.max_length - served)
        if room <= 0:
            return FeedPage(items=[], next=None)
        entries = await fanout.reader.read(kind, user, limit=room + 1, before=before)  # merges pulled accounts
        more = len(entries) > room and (served is None or served + room < self.settings.max_length)
        entries = entries[:room]
        return FeedPage(
            items=[activity_doc(a) for a in entries],  # a walk from an uncounted cursor counts from here
            next=position_cursor(entries[-1].key, (served or 0) + len(entries)) if more else None,
        )

    async def touch(self, fanout: Fanout, user: str) -> None:
        """Mark ``user`` active: they read their own feed (aggregated timelines, notifications)."""
        await self._mark_active(fanout, user)

    async def _mark_active(self, fanout: Fanout, user: str) -> None:
        now = time.monotonic()
        marked = self._marked.get(user)
        if marked is not None and now - marked < MARK_EVERY_SECONDS:
            return
        await fanout.mark_active(user)  # the core's policy: a write at most ~twice a day
        self._marked[user] = now
        self._marked.move_to_end(user)
        while len(self._marked) > MARKED_USERS:
            self._marked.popitem(last=False)
