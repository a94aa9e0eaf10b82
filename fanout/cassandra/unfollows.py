"""``Store.unfollowed`` on Cassandra (a mixin of ``CassandraStore``): the table ``followers``.

An unfollow writes the followee's ``followers`` row with ``following`` deleted and
``unfollowed_at`` set, both at the edge's timestamp (``unfollowed_at`` with a TTL as long as the
chunk topics keep a chunk, ``_unfollowed_ttl``: then the row of an edge off is purged again); a later
follow writes ``following`` again. So a row whose ``following`` is a tombstone and whose
``unfollowed_at`` is set is an edge off now, decided at ``unfollowed_at``. A writer asks for the
followers of its chunks, one followee at a time, ``IN_LIST`` followers a query (one partition,
its clustering keys).

A writer deletes what it finds, so a stale read must not find an edge off that a newer follow
turned on: the followers found off (usually none) are read again at a level that sees every write
acknowledged at the write level (``confirm_level``: QUORUM after QUORUM writes, EACH_QUORUM after
LOCAL_QUORUM ones, which another data centre's reads would miss, ALL after ONE or ANY; none after
ALL). If that read fails for want of replicas, nothing counts (the rows stay, as they did before
writers looked at the edges), and a warning says so, at most once a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from typing import Any, Final

from ..errors import StoreError
from ..settings import Settings
from ..settling import all_settled
from .bridge import DriverBridge
from .statements import Statements

#: Followers named in one query (a chunk's worth: the planner's default ``chunk_size``).
IN_LIST: Final = 100
REPEAT_WARNING_S: Final = 60.0
MAX_TTL_S: Final = 630_720_000  # Cassandra's greatest TTL (20 years)
log = logging.getLogger(__name__)


def confirm_level(write: str, read: str) -> str | None:
    """The level the edges found off are read again at, after writes at ``write`` and a first
    read at ``read`` (None: that read saw every acknowledged write already)."""
    level = {"ALL": None, "QUORUM": "QUORUM", "EACH_QUORUM": "QUORUM", "SERIAL": "QUORUM",
             "LOCAL_QUORUM": "EACH_QUORUM", "LOCAL_SERIAL": "EACH_QUORUM"}.get(write, "ALL")
    return None if level is None or read in (level, "ALL") else level


class CassandraUnfollows:
    _bridge: DriverBridge
    settings: Settings
    _unconfirmed_warned: float = -REPEAT_WARNING_S

    async def _statements(self) -> Statements:
        raise NotImplementedError  # CassandraStore's

    def _unfollowed_ttl(self) -> int:
        """Seconds an unfollow's ``unfollowed_at`` is kept: as long as a chunk planned before it can
        wait on the high and low topics (``FANOUT_CHUNKS_RETENTION_MS``; 0, no TTL, if for ever)."""
        retention_ms = self.settings.chunks_retention_ms
        return 0 if retention_ms < 0 else min(max(retention_ms // 1000, 1), MAX_TTL_S)

    async def unfollowed(self, followee: str, followers: Collection[str]) -> dict[str, int]:
        s = await self._statements()
        off = await self._edges_off(s, followee, sorted(set(followers)), None)
        level = confirm_level(self.settings.write_consistency, self.settings.read_consistency)
        if not off or level is None:
            return off
        from cassandra import ConsistencyLevel

        try:
            return await self._edges_off(s, followee, sorted(off), ConsistencyLevel.name_to_value[level])
        except StoreError as exc:
            if not exc.retriable:
                raise
            if time.monotonic() - self._unconfirmed_warned >= REPEAT_WARNING_S:
                self._unconfirmed_warned = time.monotonic()
                log.warning("edges off not confirmed at %s (%s): their rows stay until an unfollow or a "
                            "replay takes them; at most one such line a minute", level, exc)
            return {}

    async def _edges_off(self, s: Statements, followee: str, users: list[str], level: Any) -> dict[str, int]:
        """The edges off of ``users``, the queries at once (at ``level``; None: the reads' level)."""
        bounds = [s.unfollowed_among.bind((followee, users[i : i + IN_LIST])) for i in range(0, len(users), IN_LIST)]
        if level is not None:
            for bound in bounds:
                bound.consistency_level = level
        found = await all_settled(self._bridge.fetch_all(bound, "unfollowed") for bound in bounds)
        return {follower: at for rows in found for follower, on, at in rows if not on and at is not None}
