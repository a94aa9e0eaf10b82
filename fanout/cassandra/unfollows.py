"""``Store.unfollowed`` on Cassandra (a mixin of ``CassandraStore``): the table ``followers``.

An unfollow writes the followee's ``followers`` row with ``following`` deleted and
``unfollowed_at`` set, both at the edge's timestamp; a later follow writes ``following`` again.
So a row whose ``following`` is a tombstone and whose ``unfollowed_at`` is set is an edge off now,
decided at ``unfollowed_at``. A writer asks for the followers of its chunks, one followee at a
time, ``IN_LIST`` followers a query (one partition, its clustering keys).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from ..settling import all_settled
from .bridge import DriverBridge
from .statements import Statements

#: Followers named in one query (a chunk's worth: the planner's default ``chunk_size``).
IN_LIST: Final = 100


class CassandraUnfollows:
    _bridge: DriverBridge

    async def _statements(self) -> Statements:
        raise NotImplementedError  # CassandraStore's

    async def unfollowed(self, followee: str, followers: Iterable[str]) -> dict[str, int]:
        s = await self._statements()
        users = sorted(set(followers))
        reads = [
            self._bridge.fetch_all(s.unfollowed_among.bind((followee, users[start : start + IN_LIST])), "unfollowed")
            for start in range(0, len(users), IN_LIST)
        ]
        found = await all_settled(reads)  # the queries at once; the first failure raised once all settled
        return {follower: at for rows in found for follower, on, at in rows if not on and at is not None}
