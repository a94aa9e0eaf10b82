"""``MarkStore`` on Cassandra (a mixin of ``CassandraStore``): the table ``notification_marks``.

One partition per notification feed, one row per group (``group_id`` ``''``: the feed-wide mark),
``seen`` and ``read`` written with the value as the write timestamp, so the newest write is the
greatest value: marks only grow, without a read, whatever order they arrive in (``fanout.marks``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ..marks import Marks, MarkWrite
from .bridge import DriverBridge
from .statements import Statements


class CassandraMarks:
    _bridge: DriverBridge

    async def _statements(self) -> Statements:
        raise NotImplementedError  # CassandraStore's

    async def read_marks(self, feed: str) -> Marks:
        s = await self._statements()
        rows = await self._bridge.fetch_all(s.read_marks.bind((feed,)), "read_marks")
        marks = Marks({}, {})
        for group, seen, read in rows:
            if seen is not None:
                marks.seen[group] = seen
            if read is not None:
                marks.read[group] = read
        return marks

    async def write_marks(self, feed: str, writes: Sequence[MarkWrite]) -> None:
        s = await self._statements()
        requests = [
            (s.mark_seen if field == "seen" else s.mark_read).bind((value, value, feed, group))
            for group, field, value in writes
        ]
        await self._bridge.run_all(requests, "write_marks")
