"""Applying chunk messages to timelines: the work of the writer agents and of the eager mode."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

from .activity import REMOVED_WRITE_TS
from .codec import ChunkMessage
from .store import Store, TimelineWrite

_MAX_TRACKED_FEEDS = 200_000
_READS_AT_ONCE = 256  # registry reads awaited together (the store bounds its requests in flight too)


class TimelineWriter:
    """Turns chunks into timeline writes, applies them, and keeps feeds near ``max_length``.

    Trimming is amortised: a feed is trimmed (to exactly ``max_length``, by activity order)
    once every ``trim_every`` inserts into it, so a write costs O(1) on average and a feed
    holds at most ``max_length + trim_every - 1`` entries between trims.
    """

    def __init__(self, store: Store, *, max_length: int, trim_every: int) -> None:
        self.store = store
        self.max_length = max_length
        self.trim_every = trim_every
        self._inserts: dict[str, int] = {}
        self.rows_written = 0  # timeline rows the store acknowledged (puts and deletes; trims not counted)

    async def write_chunks(self, chunks: Sequence[ChunkMessage]) -> int:
        """Apply every feed write of the chunks; return the number of timeline rows written.

        Then, once per activity added, read the registry: an add chunk whose activity was removed
        meanwhile is written again as a remove. After the write, not before: a removal recorded
        while the add was on its way to the store is seen, and one recorded after this read is
        fanned out after this write (it wins) or, for a follower who unfollowed before it was
        planned, met by the unfollow's deletes (the unfollow read the author's feed, which held the
        activity, or this follower's, which held this write). See ``fanout.core``.
        """
        writes = [
            TimelineWrite(feed, chunk.activity, chunk.write_ts, chunk.op == "remove")
            for chunk in chunks
            for feed in chunk.feeds
        ]
        await self.write(writes)
        undone = await self._removed_since(chunks)
        await self.write(undone)
        return len(writes) + len(undone)

    async def _removed_since(self, chunks: Sequence[ChunkMessage]) -> list[TimelineWrite]:
        """Removes for the feeds of the add chunks whose activity the registry says is removed."""
        added = list(dict.fromkeys(chunk.activity.id for chunk in chunks if chunk.op == "add"))
        removed: set[str] = set()
        for start in range(0, len(added), _READS_AT_ONCE):
            ids = added[start : start + _READS_AT_ONCE]
            if len(ids) == 1:  # the eager mode writes one chunk at a time: no task to gather
                entries = [await self.store.get_activity(ids[0])]
            else:
                entries = await asyncio.gather(*(self.store.get_activity(activity_id) for activity_id in ids))
            removed.update(i for i, entry in zip(ids, entries, strict=True) if entry is not None and entry.removed)
        if not removed:
            return []
        return [
            TimelineWrite(feed, chunk.activity, REMOVED_WRITE_TS, remove=True)
            for chunk in chunks
            if chunk.op == "add" and chunk.activity.id in removed
            for feed in chunk.feeds
        ]

    async def write(self, writes: Sequence[TimelineWrite]) -> None:
        if not writes:
            return
        await self.store.apply(writes)
        self.rows_written += len(writes)
        await self._trim_due(w.feed for w in writes if not w.remove)

    async def _trim_due(self, feeds: Iterable[str]) -> None:
        due: list[str] = []
        counts = self._inserts
        for feed in feeds:
            n = counts.get(feed, 0) + 1
            if n >= self.trim_every:
                due.append(feed)
                n = 0
            counts[feed] = n
        if len(counts) > _MAX_TRACKED_FEEDS:
            counts.clear()
        for feed in due:
            await self.store.trim(feed, self.max_length)
