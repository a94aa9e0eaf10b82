"""``CassandraStore``: the ``Store`` contract on Apache Cassandra (3.0+; developed on 5.0).

How each operation maps onto the tables, and why: the ``fanout.cassandra`` package docstring.
This module holds the lifecycle (connect, migrate, close) and the ``Store`` methods; the CQL is in
``statements`` and ``schema``, timeline write batching in ``batching``, and the requests go
through ``bridge`` (bounded in flight, failures as ``StoreError`` by ``errors``).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Hashable, Mapping, Sequence
from typing import Any, Final

import msgspec

from ..activity import Activity
from ..errors import ConfigError, StoreError
from ..settings import Settings
from ..store import Edge, FollowerRow, Key, RegistryEntry, TimelineWrite
from .batching import (
    REPLICA_BATCH_ROWS,
    ROWS_IN_FLIGHT,
    WRITE_MODES,
    ReplicaKey,
    replica_requests,
    row_deletes,
    timeline_requests,
)
from .bridge import DriverBridge
from .errors import closed_error, connect_retriable, store_error
from .follow_runs import by_feed, follow_requests
from .marks import CassandraMarks
from .pulled import PulledAccounts
from .rows import activity_from_row, decided_in, edge_from_row, encode_extra
from .schema import ADDED_COLUMNS, DDL_TIMEOUT, TABLE_COLUMNS, add_column, check_name, create_schema, drop_schema
from .statements import Statements, reads_at
from .tracing import DeliveryTables
from .unfollows import CassandraUnfollows

TRIM_PAGE: Final = 1000  # rows a trim reads (and then deletes) per page past the first max_length
_REQUEST_TIMEOUT: Final = 12.0


def _connection_class() -> Any:
    """libev when the wheel has it (fastest), else the asyncio reactor (asyncore is gone in 3.12)."""
    try:
        from cassandra.io.libevreactor import LibevConnection
    except Exception:  # pragma: no cover - depends on how the driver was built
        from cassandra.io.asyncioreactor import AsyncioConnection

        return AsyncioConnection
    return LibevConnection


class CassandraStore(PulledAccounts, DeliveryTables, CassandraMarks, CassandraUnfollows):
    """The ``Store`` on Cassandra. Build it with ``await CassandraStore.connect(settings)``."""

    def __init__(
        self,
        cluster: Any,
        session: Any,
        settings: Settings,
        *,
        keyspace: str | None = None,
        write_mode: str | None = None,
    ) -> None:
        write_mode = write_mode or settings.cassandra_write_mode
        if write_mode not in WRITE_MODES:
            raise ConfigError(f"write_mode must be one of {WRITE_MODES}, not {write_mode!r}")
        self.cluster = cluster
        self.session = session
        self.settings = settings
        self.keyspace = check_name(keyspace or settings.cassandra_keyspace)
        self.write_mode = write_mode
        self.closed = False  # then every request raises a non-retriable StoreError
        self._bridge = DriverBridge(session, settings.max_in_flight)
        self._stmts: Statements | None = None
        self._prepare_lock = asyncio.Lock()

    # lifecycle -------------------------------------------------------------------------
    @classmethod
    async def connect(
        cls, settings: Settings, *, keyspace: str | None = None, write_mode: str | None = None
    ) -> CassandraStore:
        """Connect to ``settings.cassandra_hosts`` (the keyspace need not exist yet: ``migrate``).

        Requests are routed to a replica of their partition and run at the settings' write and read
        consistency levels (``routing``)."""
        from .routing import build_cluster

        name = check_name(keyspace or settings.cassandra_keyspace)
        cluster = build_cluster(settings, request_timeout=_REQUEST_TIMEOUT, connection_class=_connection_class())
        try:
            session = await asyncio.to_thread(cluster.connect)
        except Exception as exc:
            await asyncio.to_thread(cluster.shutdown)
            hosts = ",".join(settings.cassandra_hosts)
            if not connect_retriable(exc):  # a setting, not an outage
                raise StoreError(f"Cassandra on {hosts}:{settings.cassandra_port} refused the connection (check "
                                 f"the FANOUT_CASSANDRA_* settings): {exc}", retriable=False) from exc
            raise StoreError(
                f"Cassandra not reachable on {hosts}:{settings.cassandra_port} (start it, e.g. `make up`, or set "
                f"FANOUT_CASSANDRA_HOSTS / FANOUT_CASSANDRA_PORT): {exc}", retriable=True
            ) from exc
        return cls(cluster, session, settings, keyspace=name, write_mode=write_mode)

    async def migrate(self) -> None:
        """Create the keyspace and the tables if they do not exist (idempotent)."""
        for cql in create_schema(self.keyspace, self.settings.cassandra_replication):
            await self._bridge.execute(cql, request_timeout=DDL_TIMEOUT, what="migrate")
        from .routing import consistency_level

        reads = reads_at(self.session.prepare, consistency_level(self.settings.read_consistency))
        columns = await asyncio.to_thread(reads, TABLE_COLUMNS)  # at the read level: writes may be ANY
        for table, column, cql_type in ADDED_COLUMNS:
            rows = await self._bridge.fetch_all(columns.bind((self.keyspace, table)), "migrate")
            if column not in {name for (name,) in rows}:
                cql = add_column(self.keyspace, table, column, cql_type)
                await self._bridge.execute(cql, request_timeout=DDL_TIMEOUT, what="migrate")
        self._stmts = None

    async def drop_keyspace(self) -> None:
        """Drop the keyspace and everything in it (tests)."""
        await self._bridge.execute(drop_schema(self.keyspace), request_timeout=DDL_TIMEOUT, what="drop")
        self._stmts = None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self._bridge.close()
        await asyncio.to_thread(self.cluster.shutdown)

    # timelines -------------------------------------------------------------------------
    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        if not writes:
            return
        s = await self._statements()
        if self.write_mode != "replica_batch":
            requests = timeline_requests(self.write_mode, writes, insert=s.insert, delete=s.delete)
            await self._bridge.run_all(requests, "timeline write")
            return
        requests = replica_requests(writes, insert=s.insert, delete=s.delete, replicas=self._replica_key())
        await self._bridge.run_all(requests, "timeline write", limit=ROWS_IN_FLIGHT // REPLICA_BATCH_ROWS)

    def _replica_key(self) -> ReplicaKey | None:
        """A partition key's replica set from the driver's token map (a feed, a follower, a followee:
        every table here has one text partition key); None (one set) on one node."""
        metadata = self.cluster.metadata
        token_map = metadata.token_map
        if token_map is None or len(metadata.all_hosts()) <= 1:
            return None
        from_key, keyspace = token_map.token_class.from_key, self.keyspace

        def replicas(feed: str) -> Hashable:
            return tuple(token_map.get_replicas(keyspace, from_key(feed.encode())))

        return replicas

    async def read(
        self, feed: str, *, limit: int, before: Key | None = None, after: Key | None = None
    ) -> list[Activity]:
        if limit <= 0:
            return []
        s = await self._statements()
        if after is None:
            if before is None:
                rows = await self._bridge.fetch_all(s.read.bind((feed, limit)), "read")
            else:
                rows = await self._bridge.fetch_all(s.read_before.bind((feed, before[0], before[1], limit)), "read")
            return [activity_from_row(r) for r in rows]
        if before is None:
            stmt = s.read_after.bind((feed, after[0], after[1], limit))
        else:
            stmt = s.read_between.bind((feed, after[0], after[1], before[0], before[1], limit))
        rows = await self._bridge.fetch_all(stmt, "read")
        return [activity_from_row(r) for r in reversed(rows)]

    async def trim(self, feed: str, max_length: int) -> int:
        s = await self._statements()
        skip = max(max_length, 0)  # the newest rows, kept
        scan = s.trim_scan.bind((feed,))
        scan.fetch_size = skip + TRIM_PAGE
        deleted = 0
        below: int | None = None  # the range delete's time, once written
        paging_state: bytes | None = None
        while True:
            rows, paging_state = await self._bridge.page(scan, paging_state, "trim")
            doomed = rows[skip:]
            skip = max(skip - len(rows), 0)
            if doomed:
                if below is None:  # the newest row past the kept ones and every older row, at its time
                    below, first_id, _ = doomed[0]
                    await self._bridge.execute(s.trim_below.bind((below, feed, below, first_id)), what="trim")
                above = [row for row in doomed if row[2] > below]  # follow copies: one by one
                await self._bridge.run_all(row_deletes(feed, above, delete=s.delete), "trim")
                deleted += len(doomed)
            if paging_state is None:
                return deleted
            scan.fetch_size = TRIM_PAGE

    async def drop_timelines(self) -> None:
        s = await self._statements()
        await self._bridge.execute(s.truncate, request_timeout=DDL_TIMEOUT, what="truncate")

    async def feed_ids(self) -> list[str]:
        s = await self._statements()
        candidates = [r[0] for r in await self._bridge.fetch_all(s.feeds.bind(()), "feed_ids")]
        live: list[str] = []
        for start in range(0, len(candidates), 256):
            part = candidates[start : start + 256]
            reads = (self._bridge.fetch_all(s.any_row.bind((feed,)), "feed_ids") for feed in part)
            found = await asyncio.gather(*reads)
            live.extend(feed for feed, rows in zip(part, found, strict=True) if rows)
        return sorted(live)

    async def clear_feed(self, feed: str, write_ts: int) -> None:
        s = await self._statements()
        await self._bridge.execute(s.clear.bind((write_ts, feed)), what="clear_feed")

    # activity registry -----------------------------------------------------------------
    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        s = await self._statements()
        rows = await self._bridge.fetch_all(s.get_activity.bind((activity_id,)), "get_activity")
        if not rows:
            return None
        actor, verb, obj, target, ts, extra, removed, to = rows[0]
        activity = None
        if actor is not None:
            activity = activity_from_row((ts, activity_id, actor, verb, obj, target, extra))
            if to:
                activity = msgspec.structs.replace(activity, to=tuple(to))
        return RegistryEntry(activity, bool(removed))

    async def put_activity(self, activity: Activity) -> None:
        s = await self._statements()
        a = activity
        extra = None if a.extra is None else encode_extra(a.extra)
        to = None if a.to is None else list(a.to)
        bound = s.put_activity.bind((a.id, a.actor, a.verb, a.object, a.target, a.ts, extra, to))
        await self._bridge.execute(bound, what="put_activity")

    async def mark_removed(self, activity_id: str) -> None:
        s = await self._statements()
        await self._bridge.execute(s.mark_removed.bind((activity_id,)), what="mark_removed")

    # follow graph ----------------------------------------------------------------------
    async def set_follow(
        self, follower: str, followee: str, following: bool, at: int, active_until: int = 0, *,
        source: int | None = None,
    ) -> None:
        s = await self._statements()
        if following:
            requests = [
                s.follow_in.bind((at, followee, follower)),
                s.follow_out.bind((at, at, decided_in(source), follower, followee)),
            ]
            if active_until > 0:
                requests.append(s.raise_active_until.bind((active_until, active_until, followee, follower)))
        else:
            requests = [
                s.unfollow_in.bind((at, self._unfollowed_ttl(), at, followee, follower)),
                s.unfollow_out.bind((at, at, decided_in(source), follower, followee)),
            ]
        await self._bridge.run_all(requests, "set_follow")

    async def set_follows(
        self, follower: str, followees: Mapping[str, int], active_until: int = 0, *, source: int | None = None
    ) -> None:
        s = await self._statements()
        requests = follow_requests(s, follower, followees, active_until, source, replicas=self._replica_key())
        await self._bridge.run_all(requests, "set_follows")

    async def read_feeds(self, feeds: Sequence[str], *, limit: int) -> dict[str, list[Activity]]:
        unique = list(dict.fromkeys(feeds))
        if limit <= 0 or not unique:
            return {feed: [] for feed in unique}
        s = await self._statements()
        return by_feed(unique, await self._bridge.fetch_all(s.read_feeds.bind((unique, limit)), "read"))

    async def following(self, user: str) -> list[str]:
        s = await self._statements()
        rows = await self._bridge.fetch_all(s.following.bind((user,)), "following")
        return sorted(followee for followee, on in rows if on)

    async def follow_edge(self, follower: str, followee: str) -> Edge | None:
        s = await self._statements()
        rows = await self._bridge.fetch_all(s.follow_edge.bind((follower, followee)), "follow_edge")
        return edge_from_row(rows[0][1:]) if rows else None

    async def follow_edges(self, follower: str, followees: Collection[str] | None = None) -> dict[str, Edge]:
        s = await self._statements()
        if followees is None:
            bound = s.follow_edges.bind((follower,))
        elif not followees:
            return {}
        else:
            bound = s.follow_edges_among.bind((follower, sorted(set(followees))))
        rows = await self._bridge.fetch_all(bound, "follow_edges")
        edges = {row[0]: edge_from_row(row[1:]) for row in rows}
        return {followee: edge for followee, edge in edges.items() if edge is not None}

    async def followers(self, followee: str, *, page_size: int) -> AsyncIterator[list[FollowerRow]]:
        s = await self._statements()
        paging_state: bytes | None = None
        while True:
            bound = s.followers.bind((followee,))
            bound.fetch_size = max(page_size, 1)
            rows, paging_state = await self._bridge.page(bound, paging_state, "followers")
            page = [FollowerRow(follower, until or 0) for follower, on, until in rows if on]
            if page:
                yield page
            if paging_state is None:
                return

    async def follower_page(self, followee: str, *, after: str | None, limit: int) -> list[str]:
        s = await self._statements()
        found: list[str] = []
        paging_state: bytes | None = None
        while len(found) < limit:
            bound = s.follower_ids.bind((followee,)) if after is None else s.follower_ids_after.bind((followee, after))
            bound.fetch_size = max(limit, 1)  # unfollowed rows thin a page out: read on until `limit`
            rows, paging_state = await self._bridge.page(bound, paging_state, "follower_page")
            found.extend(follower for follower, on in rows if on)
            if paging_state is None:
                break
        return found[:limit]

    async def follower_count(self, followee: str) -> int:
        s = await self._statements()
        rows = await self._bridge.fetch_all(s.follower_count.bind((followee,)), "follower_count")
        return int(rows[0][0]) if rows else 0

    async def last_active(self, user: str) -> int:
        s = await self._statements()
        rows = await self._bridge.fetch_all(s.last_active.bind((user,)), "last_active")
        return int(rows[0][0] or 0) if rows else 0

    async def set_active(self, user: str, active_until: int, at: int) -> None:
        s = await self._statements()
        await self._bridge.execute(s.set_last_active.bind((at, at, user)), what="set_active")
        if active_until <= 0:
            return
        followees = await self.following(user)
        await self._bridge.run_all(
            (s.raise_active_until.bind((active_until, active_until, f, user)) for f in followees),
            "set_active",
        )

    def requests_by_host(self) -> dict[str, int]:
        """Requests this store sent to each Cassandra node (address -> count) since it connected:
        the coordinators token-aware routing chose (``fanout.cassandra.routing``)."""
        from .routing import requests_by_host

        return requests_by_host(self.cluster)

    # plumbing --------------------------------------------------------------------------
    async def check_schema(self) -> None:
        """Prepare every statement now: a keyspace without a table or column this build uses is a
        ``StoreError`` naming ``fanout migrate`` at once, not at the first request."""
        await self._statements()
        await self._trace_statements()
        await self._pulled_statements()

    async def _statements(self) -> Statements:
        if self._stmts is not None:
            return self._stmts
        if self.closed:
            raise closed_error()
        from .routing import consistency_level

        async with self._prepare_lock:
            if self._stmts is None:
                try:
                    self._stmts = await asyncio.to_thread(
                        Statements, self.session.prepare, self.keyspace, self.settings.cassandra_ttl_seconds,
                        consistency_level(self.settings.read_consistency),
                    )
                except Exception as exc:
                    raise store_error(exc, f"preparing statements in keyspace {self.keyspace!r}") from exc
            return self._stmts

    # reached into by tests/contract/test_store_contract.py --------------------------------
    @property
    def _in_flight(self) -> asyncio.Semaphore:
        return self._bridge.in_flight

    async def _fetch_all(self, statement: Any, what: str) -> list[Any]:
        return await self._bridge.fetch_all(statement, what)


async def migrate(settings: Settings, *, keyspace: str | None = None) -> None:
    """``fanout migrate``: create the keyspace and tables named by the settings."""
    store = await CassandraStore.connect(settings, keyspace=keyspace)
    try:
        await store.migrate()
    finally:
        await store.close()
