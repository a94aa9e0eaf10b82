"""The prepared CQL of the store: every query it runs, with ``?`` markers for the values.

Only identifiers (the keyspace, checked by ``schema.check_name``) and the TTL (an int from the
settings) are formatted into the text; every value is bound.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeVar

from .binding import binds_rows
from .errors import store_error
from .rows import ACTIVITY_COLUMNS

S = TypeVar("S")


def idempotent(prepare: Callable[[str], Any], cql: str) -> Any:
    """``cql`` prepared and marked idempotent (the driver may send it again after a timeout)."""
    stmt = prepare(cql)
    stmt.is_idempotent = True
    return stmt


def reads_at(prepare: Callable[[str], Any], read_consistency: int | None) -> Callable[[str], Any]:
    """``prepare`` that gives every SELECT ``read_consistency`` (the driver's value; None: the
    session's default, which is the write consistency, ``routing``)."""

    def reading(cql: str) -> Any:
        stmt = prepare(cql)
        if read_consistency is not None and cql.startswith("SELECT"):
            stmt.consistency_level = read_consistency
        return stmt

    return reading


async def prepare_all(
    statements: Callable[[Callable[[str], Any], str], S], session: Any, ks: str, what: str, read_consistency: int | None
) -> S:
    """``statements(prepare, ks)`` in a thread, every SELECT at ``read_consistency`` (``reads_at``);
    a failure is a ``StoreError`` naming ``what``."""
    try:
        return await asyncio.to_thread(statements, reads_at(session.prepare, read_consistency), ks)
    except Exception as exc:
        raise store_error(exc, f"preparing the {what} statements in {ks!r}") from exc


class Statements:
    """Every prepared statement of a keyspace, prepared with ``prepare`` (the driver's ``Session.prepare``).

    Every statement but ``truncate`` is marked idempotent: sending it twice changes nothing, since
    writes carry their own write timestamps, so the driver may send it again after a timeout.
    Reads run at ``read_consistency`` (``reads_at``).
    """

    def __init__(self, prepare: Callable[[str], Any], ks: str, ttl: int, read_consistency: int | None = None) -> None:
        using_ttl = f" AND TTL {ttl}" if ttl > 0 else ""
        reg_ttl = f" USING TTL {ttl}" if ttl > 0 else ""
        select = f"SELECT {ACTIVITY_COLUMNS} FROM {ks}.timeline WHERE feed = ?"
        newer = " AND (ts, activity_id) > (?, ?)"
        older = " AND (ts, activity_id) < (?, ?)"
        asc = " ORDER BY ts ASC, activity_id ASC"

        reading = reads_at(prepare, read_consistency)

        def p(cql: str, idempotent: bool = True) -> Any:
            stmt = reading(cql)
            stmt.is_idempotent = idempotent
            return stmt

        self.insert = binds_rows(p(  # the timeline's rows go in batches (fanout.cassandra.binding)
            f"INSERT INTO {ks}.timeline (feed, ts, activity_id, actor, verb, object, target, extra) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?{using_ttl}"
        ))
        self.delete = binds_rows(
            p(f"DELETE FROM {ks}.timeline USING TIMESTAMP ? WHERE feed = ? AND ts = ? AND activity_id = ?")
        )
        self.read = p(f"{select} LIMIT ?")
        self.read_feeds = p(f"SELECT feed, {ACTIVITY_COLUMNS} FROM {ks}.timeline WHERE feed IN ? PER PARTITION LIMIT ?")
        self.read_before = p(f"{select}{older} LIMIT ?")
        self.read_after = p(f"{select}{newer}{asc} LIMIT ?")
        self.read_between = p(f"{select}{newer}{older}{asc} LIMIT ?")
        # trim: every row's key and write time (every insert sets ``actor``), newest first; the rows
        # past the first max_length go with one range delete (``trim_below``: the first of them and
        # every older row, at that row's time) and each row written above that time with ``delete``
        self.trim_scan = p(f"SELECT ts, activity_id, WRITETIME(actor) FROM {ks}.timeline WHERE feed = ?")
        self.trim_below = p(
            f"DELETE FROM {ks}.timeline USING TIMESTAMP ? WHERE feed = ? AND (ts, activity_id) <= (?, ?)"
        )
        self.clear = p(f"DELETE FROM {ks}.timeline USING TIMESTAMP ? WHERE feed = ?")
        self.any_row = p(f"SELECT ts FROM {ks}.timeline WHERE feed = ? LIMIT 1")
        self.feeds = p(f"SELECT DISTINCT feed FROM {ks}.timeline")
        self.truncate = p(f"TRUNCATE {ks}.timeline", idempotent=False)

        self.get_activity = p(
            f"SELECT actor, verb, object, target, ts, extra, removed, to_feeds FROM {ks}.activities "
            "WHERE activity_id = ?"
        )
        self.put_activity = p(
            f"INSERT INTO {ks}.activities (activity_id, actor, verb, object, target, ts, extra, to_feeds) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?){reg_ttl}"
        )
        self.mark_removed = p(f"UPDATE {ks}.activities{reg_ttl} SET removed = true WHERE activity_id = ?")

        self.follow_in = p(
            f"UPDATE {ks}.followers USING TIMESTAMP ? SET following = true WHERE followee = ? AND follower = ?"
        )
        # ``unfollowed_at``: when the edge was turned off, readable while ``following`` is a tombstone
        # (a writer's late chunk is deleted at that timestamp, ``TimelineWriter``)
        self.unfollow_in = p(
            f"UPDATE {ks}.followers USING TIMESTAMP ? AND TTL ? "
            "SET following = null, unfollowed_at = ? WHERE followee = ? AND follower = ?"
        )
        self.unfollowed_among = p(
            f"SELECT follower, following, unfollowed_at FROM {ks}.followers WHERE followee = ? AND follower IN ?"
        )
        # ``decided_at`` == write timestamp: the newest decision's timestamp, even after an unfollow
        # (whose ``following`` cell is a tombstone, and a tombstone has no readable write time);
        # ``decided_in``: the partition of ``follows`` whose record decided it (``rows.decided_in``)
        self.follow_out = p(
            f"UPDATE {ks}.following USING TIMESTAMP ? SET following = true, decided_at = ?, decided_in = ? "
            "WHERE follower = ? AND followee = ?"
        )
        self.unfollow_out = p(
            f"UPDATE {ks}.following USING TIMESTAMP ? SET following = null, decided_at = ?, decided_in = ? "
            "WHERE follower = ? AND followee = ?"
        )
        # value == write timestamp: the greatest value wins (max semantics without a read)
        self.raise_active_until = p(
            f"UPDATE {ks}.followers USING TIMESTAMP ? SET active_until = ? WHERE followee = ? AND follower = ?"
        )
        self.followers = p(f"SELECT follower, following, active_until FROM {ks}.followers WHERE followee = ?")
        self.following = p(f"SELECT followee, following FROM {ks}.following WHERE follower = ?")
        follower_ids = f"SELECT follower, following FROM {ks}.followers WHERE followee = ?"
        self.follower_ids = p(follower_ids)
        self.follower_ids_after = p(f"{follower_ids} AND follower > ?")
        # count(column) counts the live cells: an unfollow deletes `following`, leaving the row
        self.follower_count = p(f"SELECT count(following) FROM {ks}.followers WHERE followee = ?")
        edge = (f"SELECT followee, following, decided_at, WRITETIME(following), decided_in, WRITETIME(decided_in) "
                f"FROM {ks}.following WHERE follower = ?")
        self.follow_edges = p(edge)
        self.follow_edge = p(f"{edge} AND followee = ?")
        self.follow_edges_among = p(f"{edge} AND followee IN ?")
        # notification marks (fanout.marks): value == write timestamp, so the greatest value wins
        self.read_marks = p(f"SELECT group_id, seen, read FROM {ks}.notification_marks WHERE feed = ?")
        mark = f"UPDATE {ks}.notification_marks USING TIMESTAMP ? SET"
        self.mark_seen = p(f"{mark} seen = ? WHERE feed = ? AND group_id = ?")
        self.mark_read = p(f"{mark} read = ? WHERE feed = ? AND group_id = ?")
        self.last_active = p(f"SELECT last_active FROM {ks}.users WHERE user = ?")
        self.set_last_active = p(f"UPDATE {ks}.users USING TIMESTAMP ? SET last_active = ? WHERE user = ?")
