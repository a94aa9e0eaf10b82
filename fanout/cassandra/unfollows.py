"""``Store.unfollowed`` on Cassandra (a mixin of ``CassandraStore``): the table ``followers``.

An unfollow writes the followee's ``followers`` row with ``following`` deleted and
``unfollowed_at`` set, both at the edge's timestamp (``unfollowed_at`` with a TTL of
``UNFOLLOWED_TTL_SECONDS``: the row of an edge off is purged again, as its tombstone is); a later
follow writes ``following`` again. So a row whose ``following`` is a tombstone and whose
``unfollowed_at`` is set is an edge off now, decided at ``unfollowed_at``. A writer asks for the
followers of its chunks, one followee at a time, ``IN_LIST`` followers a query (one partition,
its clustering keys).

A writer deletes what it finds, so a stale read must not find an edge off that a newer follow
turned on: when the configured read and write levels need not overlap (R + W <= the replication
factor: ONE with ONE on three replicas, writes at ANY), the followers found off are read again
at ALL before they count, and if not every replica answers, none does (the rows stay, as they did
before writers looked at the edges).
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Final

from ..errors import StoreError
from ..settings import Settings
from ..settling import all_settled
from .bridge import DriverBridge
from .statements import Statements

#: Followers named in one query (a chunk's worth: the planner's default ``chunk_size``).
IN_LIST: Final = 100


def levels_overlap(settings: Settings) -> bool:
    """Whether every read sees every acknowledged write: R + W > the replication factor."""
    rf = settings.cassandra_replication
    counts = {"ANY": 0, "ONE": 1, "LOCAL_ONE": 1, "TWO": 2, "THREE": 3, "ALL": rf}
    read, write = (counts.get(level, rf // 2 + 1) for level in (settings.read_consistency, settings.write_consistency))
    return read + write > rf


class CassandraUnfollows:
    _bridge: DriverBridge
    settings: Settings

    async def _statements(self) -> Statements:
        raise NotImplementedError  # CassandraStore's

    async def unfollowed(self, followee: str, followers: Collection[str]) -> dict[str, int]:
        s = await self._statements()
        off = await self._edges_off(s, followee, sorted(set(followers)), None)
        if not off or levels_overlap(self.settings):
            return off
        from cassandra import ConsistencyLevel

        try:
            return await self._edges_off(s, followee, sorted(off), ConsistencyLevel.ALL)
        except StoreError:
            return {}  # not confirmed: nothing is deleted

    async def _edges_off(self, s: Statements, followee: str, users: list[str], level: Any) -> dict[str, int]:
        """The edges off of ``users``, the queries at once (at ``level``; None: the reads' level)."""
        bounds = [s.unfollowed_among.bind((followee, users[i : i + IN_LIST])) for i in range(0, len(users), IN_LIST)]
        if level is not None:
            for bound in bounds:
                bound.consistency_level = level
        found = await all_settled(self._bridge.fetch_all(bound, "unfollowed") for bound in bounds)
        return {follower: at for rows in found for follower, on, at in rows if not on and at is not None}
