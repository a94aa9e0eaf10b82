"""``CassandraStore``: the ``Store`` contract on Apache Cassandra (3.0+; developed on 5.0).

Nothing connects at import time: ``await CassandraStore.connect(settings)`` builds the driver
``Cluster`` (in a thread, so the event loop never blocks) and ``await store.migrate()`` (or
``fanout migrate``) creates the keyspace and the tables::

    timeline   (feed, ts, activity_id) -> activity columns   one partition per feed, newest first
    activities (activity_id)           -> activity, removed  the registry
    followers  (followee, follower)    -> following, active_until
    following  (follower, followee)    -> following
    users      (user)                  -> last_active

Semantics are the memory twin's (``fanout.memory``): every cell is written ``USING TIMESTAMP``
the write timestamp the core chose, so the newest write wins and a delete wins a tie, whatever
order the writes arrive in. How each operation maps onto that:

* timeline insert/delete: ``INSERT ... USING TIMESTAMP write_ts`` / ``DELETE ... USING TIMESTAMP
  write_ts`` of the row ``(feed, ts, activity_id)``. Null ``target``/``extra`` are sent unset, so
  an insert never writes cell tombstones. ``extra`` is JSON text (msgspec), never pickle.
* follow edges: ``following = true`` at the follow time; an unfollow *deletes* that cell at its
  time (a tombstone wins a tie, as in the memory store; a ``false`` value would lose it).
* ``active_until`` and ``last_active`` only ever grow: they are written with the value itself as
  the write timestamp, so last-write-wins *is* max-wins, with no read-modify-write.
* ``trim`` reads the first ``max_length + 1`` keys, counts the entries past the boundary (up to
  ``TRIM_COUNT_PAGE``: exact up to there, a lower bound past it) and issues ONE range delete
  ``(ts, activity_id) < boundary`` at ``TRIMMED_WRITE_TS``, so trimmed entries stay off (no replayed
  add or follow copy brings them back), as in the memory twin. Unlike the memory twin, which
  tombstones only the entries it trimmed, the range tombstone also hides an entry that arrives
  later *below the boundary* (older than the newest ``max_length`` at trim time), until
  ``gc_grace_seconds`` purges the tombstone. ``trim(feed, 0)`` deletes up to the newest entry.
* Tombstones (removes at ``REMOVED_WRITE_TS``, unfollows, trims) are purged after
  ``gc_grace_seconds`` (10 days by default): a replay of an add older than that can resurrect a
  removed entry, unless the registry (``activities.removed``) stops it first, as ``Fanout`` does.
* ``settings.cassandra_ttl_seconds > 0`` adds ``USING TTL`` to timeline inserts and registry
  writes (counted from the write, not from the activity time).

Writes go through prepared, idempotent statements with at most ``settings.max_in_flight``
requests in flight per store (an ``asyncio.Semaphore`` around ``execute_async``; the driver's
callbacks reach the loop through ``call_soon_threadsafe``, one wake-up per burst). Failures
surface as ``StoreError``; timeouts, unavailability and lost connections are ``retriable``.

Write strategies (``write_mode``): ``"concurrent"`` sends one single-row statement per write;
``"partition_batch"`` sends an UNLOGGED batch per feed partition holding several writes of the
call (at most 100 rows / ~16 KiB each) and single statements otherwise.
Measured (``apply`` of 20,000 timeline inserts, one local Cassandra 5.0.7 node on the same
2-CPU box, libev reactor, 128 in flight, modes interleaved, median of 3; two sessions on a box
shared with other benchmarks, hence the spread):

    rows spread over      concurrent            partition_batch
    200 feeds (100 each)  3,100 / 5,400 rows/s  37,000 / 58,700 rows/s  (~11x)
    20,000 feeds (1 each) 2,200 / 5,100 rows/s   1,600 / 3,900 rows/s  (same path: noise)

So ``partition_batch`` is much faster when a call carries several rows per feed (follow copies,
imports, replays, writer batches holding several chunks of one author) and takes the same path
otherwise: the driver is CPU-bound per request, and a same-partition batch is one request and
one mutation. A single fanout chunk (one activity into 100 feeds) has one row per feed.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from typing import Any, Final

import msgspec

from ..activity import TRIMMED_WRITE_TS, Activity
from ..errors import ConfigError, StoreError
from ..settings import Settings
from ..store import FollowerRow, Key, RegistryEntry, TimelineWrite

__all__ = ["BATCH_MAX_BYTES", "BATCH_MAX_STATEMENTS", "TRIM_COUNT_PAGE", "WRITE_MODES", "CassandraStore", "migrate"]

WRITE_MODES: Final = ("concurrent", "partition_batch")
TRIM_COUNT_PAGE: Final = 5000  # trim counts (and bounds its read to) this many doomed entries
_READ_PAGE: Final = 5000
# Single-partition batches are exempt from batch_size_warn/fail_threshold (CASSANDRA-10876,
# checked on 5.0.7: a 60 KiB one-feed batch neither warns nor fails); these caps only keep each
# request small enough to spread over the in-flight slots (16 KiB/100 measured best of 4/16/64 KiB).
BATCH_MAX_BYTES: Final = 16 * 1024
BATCH_MAX_STATEMENTS: Final = 100
_REQUEST_TIMEOUT: Final = 12.0
_DDL_TIMEOUT: Final = 120.0
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")

_encoder = msgspec.json.Encoder()
_extra_decoder = msgspec.json.Decoder(dict[str, Any])

_ACTIVITY_COLUMNS = "ts, activity_id, actor, verb, object, target, extra"


def _schema(ks: str, replication: int) -> list[str]:
    return [
        f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {replication}}}",
        # Leveled compaction: timelines are read-heavy and rewritten (upserts, removes, range
        # trims), and a read should touch few SSTables. Not TWCS: write timestamps are activity
        # times and REMOVED_WRITE_TS, not arrival times.
        f"""CREATE TABLE IF NOT EXISTS {ks}.timeline (
            feed text, ts bigint, activity_id text,
            actor text, verb text, object text, target text, extra text,
            PRIMARY KEY ((feed), ts, activity_id)
        ) WITH CLUSTERING ORDER BY (ts DESC, activity_id DESC)
          AND compaction = {{'class': 'LeveledCompactionStrategy'}}
          AND comment = 'fanout: one partition per feed, newest first'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.activities (
            activity_id text PRIMARY KEY,
            actor text, verb text, object text, target text, ts bigint, extra text, removed boolean
        ) WITH comment = 'fanout: activity registry'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.followers (
            followee text, follower text, following boolean, active_until bigint,
            PRIMARY KEY ((followee), follower)
        ) WITH comment = 'fanout: follow graph by followee'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.following (
            follower text, followee text, following boolean,
            PRIMARY KEY ((follower), followee)
        ) WITH comment = 'fanout: follow graph by follower'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.users (
            user text PRIMARY KEY, last_active bigint
        ) WITH comment = 'fanout: when a user was last active'""",
    ]


def _check_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise ConfigError(f"Cassandra keyspace {name!r} must match {_NAME.pattern}")
    return name


def _connection_class() -> Any:
    """libev when the wheel has it (fastest), else the asyncio reactor (asyncore is gone in 3.12)."""
    try:
        from cassandra.io.libevreactor import LibevConnection
    except Exception:  # pragma: no cover - depends on how the driver was built
        from cassandra.io.asyncioreactor import AsyncioConnection

        return AsyncioConnection
    return LibevConnection


def _is_retriable(exc: BaseException) -> bool:
    from cassandra import OperationTimedOut, RequestExecutionException
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException

    # RequestExecutionException: Unavailable, Read/WriteTimeout, Read/WriteFailure, Overloaded,
    # IsBootstrapping, TruncateError. Validation errors (InvalidRequest, Unauthorized, syntax)
    # will fail the same way again.
    return isinstance(
        exc, RequestExecutionException | OperationTimedOut | NoHostAvailable | ConnectionException | OSError
    )


def _store_error(exc: BaseException, what: str) -> StoreError:
    retriable = _is_retriable(exc)
    hint = "" if retriable else " (is the schema there? run `fanout migrate`)"
    return StoreError(f"Cassandra {what} failed: {type(exc).__name__}: {exc}{hint}", retriable=retriable)


def _json(extra: dict[str, Any] | None) -> str | None:
    return None if extra is None else _encoder.encode(extra).decode()


def _activity(row: Sequence[Any]) -> Activity:
    ts, activity_id, actor, verb, obj, target, extra = row
    return Activity(
        id=activity_id,
        actor=actor,
        verb=verb,
        object=obj,
        ts=ts,
        target=target,
        extra=None if extra is None else _extra_decoder.decode(extra),
    )


def _as_request(group: list[Any], batch_class: Any, batch_type: Any) -> Any:
    if len(group) == 1:
        return group[0]
    batch = batch_class(batch_type=batch_type)
    batch.is_idempotent = True
    for bound in group:
        batch.add(bound)
    return batch


class _Statements:
    """Every prepared statement of a keyspace."""

    def __init__(self, prepare: Any, ks: str, ttl: int) -> None:
        using_ttl = f" AND TTL {ttl}" if ttl > 0 else ""
        reg_ttl = f" USING TTL {ttl}" if ttl > 0 else ""
        select = f"SELECT {_ACTIVITY_COLUMNS} FROM {ks}.timeline WHERE feed = ?"
        newer = " AND (ts, activity_id) > (?, ?)"
        older = " AND (ts, activity_id) < (?, ?)"
        asc = " ORDER BY ts ASC, activity_id ASC"

        def p(cql: str, idempotent: bool = True) -> Any:
            stmt = prepare(cql)
            stmt.is_idempotent = idempotent
            return stmt

        self.insert = p(
            f"INSERT INTO {ks}.timeline (feed, ts, activity_id, actor, verb, object, target, extra) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?{using_ttl}"
        )
        self.delete = p(f"DELETE FROM {ks}.timeline USING TIMESTAMP ? WHERE feed = ? AND ts = ? AND activity_id = ?")
        self.read = p(f"{select} LIMIT ?")
        self.read_before = p(f"{select}{older} LIMIT ?")
        self.read_after = p(f"{select}{newer}{asc} LIMIT ?")
        self.read_between = p(f"{select}{newer}{older}{asc} LIMIT ?")
        self.keys = p(f"SELECT ts, activity_id FROM {ks}.timeline WHERE feed = ? LIMIT ?")
        self.doomed = p(f"SELECT ts FROM {ks}.timeline WHERE feed = ?{older} LIMIT ?")
        self.delete_older = p(f"DELETE FROM {ks}.timeline USING TIMESTAMP ? WHERE feed = ?{older}")
        self.delete_from = p(
            f"DELETE FROM {ks}.timeline USING TIMESTAMP ? WHERE feed = ? AND (ts, activity_id) <= (?, ?)"
        )
        self.clear = p(f"DELETE FROM {ks}.timeline USING TIMESTAMP ? WHERE feed = ?")
        self.any_row = p(f"SELECT ts FROM {ks}.timeline WHERE feed = ? LIMIT 1")
        self.feeds = p(f"SELECT DISTINCT feed FROM {ks}.timeline")
        self.truncate = p(f"TRUNCATE {ks}.timeline", idempotent=False)

        self.get_activity = p(
            f"SELECT actor, verb, object, target, ts, extra, removed FROM {ks}.activities WHERE activity_id = ?"
        )
        self.put_activity = p(
            f"INSERT INTO {ks}.activities (activity_id, actor, verb, object, target, ts, extra) "
            f"VALUES (?, ?, ?, ?, ?, ?, ?){reg_ttl}"
        )
        self.mark_removed = p(f"UPDATE {ks}.activities{reg_ttl} SET removed = true WHERE activity_id = ?")

        self.follow_in = p(
            f"UPDATE {ks}.followers USING TIMESTAMP ? SET following = true WHERE followee = ? AND follower = ?"
        )
        self.unfollow_in = p(
            f"DELETE following FROM {ks}.followers USING TIMESTAMP ? WHERE followee = ? AND follower = ?"
        )
        self.follow_out = p(
            f"UPDATE {ks}.following USING TIMESTAMP ? SET following = true WHERE follower = ? AND followee = ?"
        )
        self.unfollow_out = p(
            f"DELETE following FROM {ks}.following USING TIMESTAMP ? WHERE follower = ? AND followee = ?"
        )
        # value == write timestamp: the greatest value wins (max semantics without a read)
        self.raise_active_until = p(
            f"UPDATE {ks}.followers USING TIMESTAMP ? SET active_until = ? WHERE followee = ? AND follower = ?"
        )
        self.followers = p(f"SELECT follower, following, active_until FROM {ks}.followers WHERE followee = ?")
        self.following = p(f"SELECT followee, following FROM {ks}.following WHERE follower = ?")
        self.last_active = p(f"SELECT last_active FROM {ks}.users WHERE user = ?")
        self.set_last_active = p(f"UPDATE {ks}.users USING TIMESTAMP ? SET last_active = ? WHERE user = ?")


class CassandraStore:
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
        self.keyspace = _check_name(keyspace or settings.cassandra_keyspace)
        self.write_mode = write_mode
        self.closed = False
        self._in_flight = asyncio.Semaphore(settings.max_in_flight)
        self._stmts: _Statements | None = None
        self._prepare_lock = asyncio.Lock()
        self._bridge: _LoopBridge | None = None

    # lifecycle -------------------------------------------------------------------------
    @classmethod
    async def connect(
        cls, settings: Settings, *, keyspace: str | None = None, write_mode: str | None = None
    ) -> CassandraStore:
        """Connect to ``settings.cassandra_hosts`` (the keyspace need not exist yet: ``migrate``)."""
        from cassandra import ConsistencyLevel
        from cassandra.auth import PlainTextAuthProvider
        from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
        from cassandra.policies import DCAwareRoundRobinPolicy, TokenAwarePolicy
        from cassandra.query import tuple_factory

        name = _check_name(keyspace or settings.cassandra_keyspace)
        try:
            consistency = ConsistencyLevel.name_to_value[settings.cassandra_consistency.upper()]
        except KeyError:
            raise ConfigError(
                f"FANOUT_CASSANDRA_CONSISTENCY={settings.cassandra_consistency!r} is not a consistency level"
            ) from None
        profile = ExecutionProfile(
            load_balancing_policy=TokenAwarePolicy(DCAwareRoundRobinPolicy()),
            consistency_level=consistency,
            request_timeout=_REQUEST_TIMEOUT,
            row_factory=tuple_factory,
        )
        auth = None
        if settings.cassandra_username:
            auth = PlainTextAuthProvider(settings.cassandra_username, settings.cassandra_password)
        version = settings.cassandra_protocol_version
        versioned = {"protocol_version": version} if version else {}
        cluster = Cluster(
            list(settings.cassandra_hosts),
            port=settings.cassandra_port,
            **versioned,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile},
            connection_class=_connection_class(),
            auth_provider=auth,
            connect_timeout=10,
        )
        try:
            session = await asyncio.to_thread(cluster.connect)
        except Exception as exc:
            await asyncio.to_thread(cluster.shutdown)
            hosts = ",".join(settings.cassandra_hosts)
            raise StoreError(
                f"Cassandra not reachable on {hosts}:{settings.cassandra_port}: {exc}", retriable=True
            ) from exc
        return cls(cluster, session, settings, keyspace=name, write_mode=write_mode)

    async def migrate(self) -> None:
        """Create the keyspace and the tables if they do not exist (idempotent)."""
        for cql in _schema(self.keyspace, self.settings.cassandra_replication):
            await self._execute(cql, request_timeout=_DDL_TIMEOUT, what="migrate")
        self._stmts = None

    async def drop_keyspace(self) -> None:
        """Drop the keyspace and everything in it (tests)."""
        await self._execute(f"DROP KEYSPACE IF EXISTS {self.keyspace}", request_timeout=_DDL_TIMEOUT, what="drop")
        self._stmts = None

    async def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        await asyncio.to_thread(self.cluster.shutdown)

    # timelines -------------------------------------------------------------------------
    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        if not writes:
            return
        s = await self._statements()
        if self.write_mode == "partition_batch":
            requests: Iterable[Any] = self._batched(s, writes)
        else:
            requests = (bound for bound, _ in self._bound_writes(s, writes))
        await self._run_all(requests, "timeline write")

    def _bound_writes(self, s: _Statements, writes: Iterable[TimelineWrite]) -> Iterator[tuple[Any, int]]:
        """Each write as a bound statement, with the approximate size of its values in bytes."""
        from cassandra.query import UNSET_VALUE

        extras: dict[str, str] = {}
        for w in writes:
            a = w.activity
            if w.remove:
                yield s.delete.bind((w.write_ts, w.feed, a.ts, a.id)), 32 + len(w.feed) + len(a.id)
                continue
            extra: Any = UNSET_VALUE
            size = 48 + len(w.feed) + len(a.id) + len(a.actor) + len(a.verb) + len(a.object)
            if a.extra is not None:
                text = extras.get(a.id)
                if text is None:
                    text = extras[a.id] = _encoder.encode(a.extra).decode()
                extra = text
                size += len(text)
            target: Any = UNSET_VALUE
            if a.target is not None:
                target = a.target
                size += len(a.target)
            yield s.insert.bind((w.feed, a.ts, a.id, a.actor, a.verb, a.object, target, extra, w.write_ts)), size

    def _batched(self, s: _Statements, writes: Sequence[TimelineWrite]) -> Iterator[Any]:
        """One UNLOGGED batch per run of writes to the same feed (at most ``BATCH_MAX_BYTES`` of
        values and ``BATCH_MAX_STATEMENTS`` rows each); a lone write goes as a plain statement."""
        from cassandra.query import BatchStatement, BatchType

        by_feed: dict[str, list[TimelineWrite]] = {}
        for w in writes:
            by_feed.setdefault(w.feed, []).append(w)
        for feed_writes in by_feed.values():
            group: list[Any] = []
            size = 0
            for bound, cost in self._bound_writes(s, feed_writes):
                if group and (size + cost > BATCH_MAX_BYTES or len(group) >= BATCH_MAX_STATEMENTS):
                    yield _as_request(group, BatchStatement, BatchType.UNLOGGED)
                    group, size = [], 0
                group.append(bound)
                size += cost
            if group:
                yield _as_request(group, BatchStatement, BatchType.UNLOGGED)

    async def read(
        self, feed: str, *, limit: int, before: Key | None = None, after: Key | None = None
    ) -> list[Activity]:
        if limit <= 0:
            return []
        s = await self._statements()
        if after is None:
            if before is None:
                rows = await self._fetch_all(s.read.bind((feed, limit)), "read")
            else:
                rows = await self._fetch_all(s.read_before.bind((feed, before[0], before[1], limit)), "read")
            return [_activity(r) for r in rows]
        if before is None:
            stmt = s.read_after.bind((feed, after[0], after[1], limit))
        else:
            stmt = s.read_between.bind((feed, after[0], after[1], before[0], before[1], limit))
        rows = await self._fetch_all(stmt, "read")
        return [_activity(r) for r in reversed(rows)]

    async def trim(self, feed: str, max_length: int) -> int:
        s = await self._statements()
        max_length = max(max_length, 0)
        keys = await self._fetch_all(s.keys.bind((feed, max_length + 1)), "trim")
        if len(keys) <= max_length:
            return 0
        if max_length == 0:  # everything up to the newest entry; later, newer adds still land
            ts, activity_id = keys[0]
            below = await self._fetch_all(s.doomed.bind((feed, ts, activity_id, TRIM_COUNT_PAGE)), "trim")
            await self._execute(s.delete_from.bind((TRIMMED_WRITE_TS, feed, ts, activity_id)), what="trim")
            return 1 + len(below)
        ts, activity_id = keys[max_length - 1]  # the oldest entry kept
        doomed = await self._fetch_all(s.doomed.bind((feed, ts, activity_id, TRIM_COUNT_PAGE)), "trim")
        await self._execute(s.delete_older.bind((TRIMMED_WRITE_TS, feed, ts, activity_id)), what="trim")
        return len(doomed)

    async def drop_timelines(self) -> None:
        s = await self._statements()
        await self._execute(s.truncate, request_timeout=_DDL_TIMEOUT, what="truncate")

    async def feed_ids(self) -> list[str]:
        s = await self._statements()
        candidates = [r[0] for r in await self._fetch_all(s.feeds.bind(()), "feed_ids")]
        live: list[str] = []
        for start in range(0, len(candidates), 256):
            part = candidates[start : start + 256]
            found = await asyncio.gather(*(self._fetch_all(s.any_row.bind((feed,)), "feed_ids") for feed in part))
            live.extend(feed for feed, rows in zip(part, found, strict=True) if rows)
        return sorted(live)

    async def clear_feed(self, feed: str, write_ts: int) -> None:
        s = await self._statements()
        await self._execute(s.clear.bind((write_ts, feed)), what="clear_feed")

    # activity registry -----------------------------------------------------------------
    async def get_activity(self, activity_id: str) -> RegistryEntry | None:
        s = await self._statements()
        rows = await self._fetch_all(s.get_activity.bind((activity_id,)), "get_activity")
        if not rows:
            return None
        actor, verb, obj, target, ts, extra, removed = rows[0]
        activity = None
        if actor is not None:
            activity = _activity((ts, activity_id, actor, verb, obj, target, extra))
        return RegistryEntry(activity, bool(removed))

    async def put_activity(self, activity: Activity) -> None:
        s = await self._statements()
        a = activity
        bound = s.put_activity.bind((a.id, a.actor, a.verb, a.object, a.target, a.ts, _json(a.extra)))
        await self._execute(bound, what="put_activity")

    async def mark_removed(self, activity_id: str) -> None:
        s = await self._statements()
        await self._execute(s.mark_removed.bind((activity_id,)), what="mark_removed")

    # follow graph ----------------------------------------------------------------------
    async def set_follow(self, follower: str, followee: str, following: bool, at: int, active_until: int = 0) -> None:
        s = await self._statements()
        if following:
            requests = [
                s.follow_in.bind((at, followee, follower)),
                s.follow_out.bind((at, follower, followee)),
            ]
            if active_until > 0:
                requests.append(s.raise_active_until.bind((active_until, active_until, followee, follower)))
        else:
            requests = [
                s.unfollow_in.bind((at, followee, follower)),
                s.unfollow_out.bind((at, follower, followee)),
            ]
        await self._run_all(requests, "set_follow")

    async def following(self, user: str) -> list[str]:
        s = await self._statements()
        rows = await self._fetch_all(s.following.bind((user,)), "following")
        return sorted(followee for followee, on in rows if on)

    async def followers(self, followee: str, *, page_size: int) -> AsyncIterator[list[FollowerRow]]:
        s = await self._statements()
        paging_state: bytes | None = None
        while True:
            bound = s.followers.bind((followee,))
            bound.fetch_size = max(page_size, 1)
            rows, paging_state = await self._page(bound, paging_state, "followers")
            page = [FollowerRow(follower, until or 0) for follower, on, until in rows if on]
            if page:
                yield page
            if paging_state is None:
                return

    async def last_active(self, user: str) -> int:
        s = await self._statements()
        rows = await self._fetch_all(s.last_active.bind((user,)), "last_active")
        return int(rows[0][0] or 0) if rows else 0

    async def set_active(self, user: str, active_until: int, at: int) -> None:
        s = await self._statements()
        await self._execute(s.set_last_active.bind((at, at, user)), what="set_active")
        if active_until <= 0:
            return
        followees = await self.following(user)
        await self._run_all(
            (s.raise_active_until.bind((active_until, active_until, f, user)) for f in followees),
            "set_active",
        )

    # plumbing --------------------------------------------------------------------------
    async def _statements(self) -> _Statements:
        if self._stmts is not None:
            return self._stmts
        if self.closed:
            raise StoreError("the Cassandra store is closed", retriable=False)
        async with self._prepare_lock:
            if self._stmts is None:
                try:
                    self._stmts = await asyncio.to_thread(
                        _Statements, self.session.prepare, self.keyspace, self.settings.cassandra_ttl_seconds
                    )
                except Exception as exc:
                    raise _store_error(exc, f"preparing statements in keyspace {self.keyspace!r}") from exc
            return self._stmts

    def _submit(self, statement: Any, paging_state: bytes | None, request_timeout: float | None) -> Any:
        kwargs: dict[str, Any] = {}
        if paging_state is not None:
            kwargs["paging_state"] = paging_state
        if request_timeout is not None:
            kwargs["timeout"] = request_timeout
        return self.session.execute_async(statement, **kwargs)

    async def _execute(
        self,
        statement: Any,
        *,
        paging_state: bytes | None = None,
        request_timeout: float | None = None,
        what: str,
    ) -> Any:
        """Run one request (holding an in-flight slot); return the driver's ResultSet."""
        if self.closed:
            raise StoreError("the Cassandra store is closed", retriable=False)
        loop = asyncio.get_running_loop()
        async with self._in_flight:
            done: asyncio.Future[None] = loop.create_future()

            def settle(exc: BaseException | None) -> None:
                if done.done():
                    return
                if exc is None:
                    done.set_result(None)
                else:
                    done.set_exception(exc)

            try:
                response = self._submit(statement, paging_state, request_timeout)
            except Exception as exc:
                raise _store_error(exc, what) from exc
            bridge = self._bridge_for(loop)
            response.add_callbacks(lambda _rows: bridge.post(settle, None), lambda exc: bridge.post(settle, exc))
            try:
                await done
            except Exception as exc:
                raise _store_error(exc, what) from exc
        return response.result()  # already complete: does not block

    async def _page(self, statement: Any, paging_state: bytes | None, what: str) -> tuple[list[Any], bytes | None]:
        result = await self._execute(statement, paging_state=paging_state, what=what)
        return list(result.current_rows), result.paging_state

    async def _fetch_all(self, statement: Any, what: str) -> list[Any]:
        """Every row of a query, page by page (``LIMIT`` bounds the reads that need it)."""
        statement.fetch_size = _READ_PAGE
        rows, paging_state = await self._page(statement, None, what)
        while paging_state is not None:
            more, paging_state = await self._page(statement, paging_state, what)
            rows.extend(more)
        return rows

    async def _run_all(self, requests: Iterable[Any], what: str) -> None:
        """Send every request with at most ``max_in_flight`` outstanding; return when all are
        acknowledged; on the first failure stop sending, wait for the rest, raise StoreError."""
        if self.closed:
            raise StoreError("the Cassandra store is closed", retriable=False)
        loop = asyncio.get_running_loop()
        bridge = self._bridge_for(loop)
        all_done: asyncio.Future[None] = loop.create_future()
        pending = 0
        submitting = True
        errors: list[BaseException] = []
        sem = self._in_flight

        def finish(exc: BaseException | None) -> None:
            nonlocal pending
            pending -= 1
            sem.release()
            if exc is not None:
                errors.append(exc)
            if pending == 0 and not submitting and not all_done.done():
                all_done.set_result(None)

        def ok(_rows: Any) -> None:
            bridge.post(finish, None)

        def failed(exc: BaseException) -> None:
            bridge.post(finish, exc)

        try:
            for request in requests:
                if errors:
                    break
                await sem.acquire()
                try:
                    response = self._submit(request, None, None)
                except BaseException:
                    sem.release()
                    raise
                pending += 1
                response.add_callbacks(ok, failed)
        except Exception as exc:
            errors.append(exc)
        finally:
            submitting = False
            if pending == 0 and not all_done.done():
                all_done.set_result(None)
        await all_done
        if errors:
            first = errors[0]
            raise _store_error(first, f"{what} ({len(errors)} request(s) failed)") from first

    def _bridge_for(self, loop: asyncio.AbstractEventLoop) -> _LoopBridge:
        bridge = self._bridge
        if bridge is None or bridge.loop is not loop:
            bridge = self._bridge = _LoopBridge(loop)
        return bridge


class _LoopBridge:
    """Hands driver callbacks (run on the driver's IO thread) to the event loop.

    One ``call_soon_threadsafe`` wakes the loop per burst of completions instead of one per
    request: under load many requests complete between two turns of the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._scheduled = False

    def post(self, fn: Callable[[Any], None], arg: Any) -> None:
        self._queue.append((fn, arg))  # deque.append is atomic
        if not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False  # reset first: a post racing with this drain schedules another
        queue = self._queue
        while queue:
            fn, arg = queue.popleft()
            fn(arg)


async def migrate(settings: Settings, *, keyspace: str | None = None) -> None:
    """``fanout migrate``: create the keyspace and tables named by the settings."""
    store = await CassandraStore.connect(settings, keyspace=keyspace)
    try:
        await store.migrate()
    finally:
        await store.close()
