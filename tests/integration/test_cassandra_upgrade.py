"""``migrate`` upgrades a keyspace made by an older fanout: the follow graph's ``decided_at`` column
is added, and edges written before it existed keep their order (their write time stands in)."""

from __future__ import annotations

import asyncio
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
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()
