"""``migrate`` upgrades a keyspace made by an older fanout: the follow graph's ``decided_at`` and
``decided_in`` columns are added, and edges written before them keep their order (their write time
stands in; no partition)."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid

import pytest

from fanout import Edge, Settings
from fanout.cassandra import CassandraStore

pytestmark = pytest.mark.integration


async def test_migrate_adds_decided_at_to_an_older_follow_graph() -> None:
    settings = Settings(cassandra_consistency="ONE")
    store = await CassandraStore.connect(settings, keyspace=f"fanout_up_{uuid.uuid4().hex[:16]}")
    ks = store.keyspace

    async def run(cql: str, *values: object) -> None:
        prepared = await asyncio.to_thread(store.session.prepare, cql)
        await asyncio.to_thread(store.session.execute, prepared.bind(values))

    try:
        await store.migrate()
        await run(f"DROP TABLE {ks}.following")
        await run(f"CREATE TABLE {ks}.following (follower text, followee text, following boolean, "
                  "PRIMARY KEY ((follower), followee))")  # the table as fanout 0.x created it
        await run(f"UPDATE {ks}.following USING TIMESTAMP 5000 SET following = true "
                  "WHERE follower = ? AND followee = ?", "old", "star")

        await store.migrate()
        await store.migrate()  # idempotent
        assert await store.follow_edge("old", "star") == Edge(True, 5000)  # the write time stands in
        await store.set_follow("old", "star", False, 5001)
        assert await store.follow_edge("old", "star") == Edge(False, 5001)
        assert await store.follow_edges("old") == {"star": Edge(False, 5001)}
        assert await store.follow_edge("old", "nobody") is None
        # an agent of the earlier build, still running after migrate added decided_in, decides an
        # edge without it: the partition left in the row is not that decision's
        await store.set_follow("old", "star", True, 6000, source=2)
        assert await store.follow_edge("old", "star") == Edge(True, 6000, 2)
        await run(f"UPDATE {ks}.following USING TIMESTAMP 7000 SET following = null, decided_at = 7000 "
                  "WHERE follower = ? AND followee = ?", "old", "star")
        assert await store.follow_edge("old", "star") == Edge(False, 7000, None)
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()


async def test_migrate_adds_the_targets_column_and_the_notification_marks_table() -> None:
    from fanout import Activity
    from fanout.marks import ALL, MarkWrite

    store = await CassandraStore.connect(Settings(cassandra_consistency="ONE"),
                                         keyspace=f"fanout_up_{uuid.uuid4().hex[:16]}")
    ks = store.keyspace

    async def run(cql: str) -> None:
        await asyncio.to_thread(store.session.execute, cql)

    try:
        await store.migrate()
        await run(f"DROP TABLE {ks}.notification_marks")  # the keyspace as fanout made it before issue 15
        await run(f"ALTER TABLE {ks}.activities DROP to_feeds")
        await store.migrate()
        await store.migrate()  # idempotent
        liked = Activity(id="a1", actor="u", verb="like", object="p", ts=5, to=("notification:7",))
        await store.put_activity(liked)
        entry = await store.get_activity("a1")
        assert entry is not None and entry.activity == liked
        await store.write_marks("notification:7", [MarkWrite(ALL, "seen", 5)])
        assert (await store.read_marks("notification:7")).seen == {ALL: 5}
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()


async def test_writes_at_any_leave_migrate_reads_and_traces_at_the_read_level() -> None:
    """ANY is a write level only: migrate's look at the tables' columns, the pulled accounts every
    timeline read merges and the trace reads were prepared at the session's (write) level, and the
    node refused each ("ANY ConsistencyLevel is only supported for writes")."""
    from fanout import Fanout

    settings = Settings(cassandra_write_consistency="ANY", cassandra_read_consistency="ONE").validated()
    store = await CassandraStore.connect(settings, keyspace=f"fanout_any_{uuid.uuid4().hex[:16]}")
    try:
        await store.migrate()
        fanout = Fanout(store, settings)
        await fanout.follow("fan", "ann")
        await fanout.add(actor="ann", verb="pin", object="o1", id="a1")
        assert [a.id for a in await fanout.read("fan", limit=10)] == ["a1"]
        assert await store.pulled_accounts() == {}
        assert await store.delivery("nothing") == ([], [])
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()


async def test_an_agent_before_migrate_is_refused_at_start_in_one_line() -> None:
    """A keyspace of the build before ``followers.unfollowed_at``: a new agent refuses to start,
    one line naming ``fanout migrate`` (it used to start, then stop at its first event in four
    lines); after ``migrate`` the column is there."""
    import os
    import subprocess
    import sys

    settings = Settings(cassandra_consistency="ONE")
    store = await CassandraStore.connect(settings, keyspace=f"fanout_up_{uuid.uuid4().hex[:16]}")
    try:
        await store.migrate()
        drop = f"ALTER TABLE {store.keyspace}.followers DROP unfollowed_at"
        await asyncio.to_thread(store.session.execute, drop)
        env = {**os.environ, "FANOUT_STORE": "cassandra", "FANOUT_CASSANDRA_KEYSPACE": store.keyspace,
               "FANOUT_CASSANDRA_CONSISTENCY": "ONE", "FANOUT_TOPIC_PREFIX": f"t{uuid.uuid4().hex[:12]}."}
        worker = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-m", "fanout", "worker", "writer", "--priority", "high"],
            env=env, capture_output=True, text=True, timeout=120,
        )
        lines = (worker.stdout + worker.stderr).strip().splitlines()
        assert worker.returncode == 2, lines
        assert len(lines) == 1 and "unfollowed_at" in lines[0] and "run `fanout migrate`" in lines[0], lines
        await store.migrate()
        now = int(time.time() * 1_000_000)  # a re-added column ignores cells written before its drop
        await store.set_follow("a", "star", False, now)
        assert await store.unfollowed("star", ["a", "b"]) == {"a": now}
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()


async def test_an_edge_off_that_no_replica_set_confirms_deletes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    """Writes and reads at ONE on three replicas (here one node holds a keyspace of replication 3):
    an edge found off is read again at ALL, which fails for want of replicas; nothing counts and a
    warning says so. The unfollow's ``unfollowed_at`` lives as long as the chunk topics keep a chunk."""
    settings = Settings(cassandra_consistency="ONE", cassandra_replication=3)
    store = await CassandraStore.connect(settings, keyspace=f"fanout_rf3_{uuid.uuid4().hex[:16]}")
    try:
        await store.migrate()
        now = int(time.time() * 1_000_000)
        await store.set_follow("a", "star", False, now)
        with caplog.at_level(logging.WARNING, logger="fanout.cassandra.unfollows"):
            assert await store.unfollowed("star", ["a", "b"]) == {}
        assert "edges off not confirmed at ALL" in caplog.text
        ttl = f"SELECT TTL(unfollowed_at) FROM {store.keyspace}.followers WHERE followee = 'star' AND follower = 'a'"
        (left,) = (await asyncio.to_thread(store.session.execute, ttl)).one()
        assert 29 * 86_400 < left <= 30 * 86_400  # FANOUT_CHUNKS_RETENTION_MS, 30 days
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()
