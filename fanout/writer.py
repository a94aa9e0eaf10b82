"""Applying chunk messages to timelines: the work of the writer agents and of the eager mode."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .codec import ChunkMessage
from .store import Store, TimelineWrite

_MAX_TRACKED_FEEDS = 200_000


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
        """Apply every feed write of the chunks; return the number of timeline rows written."""
        writes = [
            TimelineWrite(feed, chunk.activity, chunk.write_ts, chunk.op == "remove")
            for chunk in chunks
            for feed in chunk.feeds
        ]
        await self.write(writes)
        return len(writes)

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
