"""Token-aware routing, shown by the driver's per-node request counts.

Every timeline write (a per-feed batch) and every read goes to the first replica of its feed's
partition in ring order: the counts per node equal, request for request, what the cluster's token
map predicts. With replication factor 1 each feed has one replica, so a request sent anywhere else
would show; with 3 every node is a replica and the counts still follow the token owners.
"""

from __future__ import annotations

import uuid
from collections import Counter
from typing import Any

import pytest

from fanout.activity import Activity
from fanout.cassandra import CassandraStore
from fanout.store import TimelineWrite
from tests.cluster.conftest import HOSTS, Cluster

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

FEEDS = 300


def _delta(after: dict[str, int], before: dict[str, int]) -> Counter[str]:
    return Counter({host: n - before.get(host, 0) for host, n in after.items() if n - before.get(host, 0)})


async def _owners(store: CassandraStore, feeds: list[str]) -> Counter[str]:
    """How many of ``feeds`` have each node as the first replica of their partition."""
    statements: Any = await store._statements()
    owners: Counter[str] = Counter()
    for feed in feeds:
        key = statements.any_row.bind((feed,)).routing_key
        owners[store.cluster.metadata.get_replicas(store.keyspace, key)[0].address] += 1
    return owners


@pytest.mark.parametrize("replication", [1, 3])
async def test_writes_and_reads_go_to_the_replica_the_token_map_names(cluster: Cluster, replication: int) -> None:
    # partition_batch: one request per feed, so the counts can be compared with the feeds' owners one
    # for one (the default replica_batch packs the rows of many feeds of one replica set into a batch)
    settings = cluster.settings(cassandra_replication=replication, cassandra_write_mode="partition_batch")
    store = await CassandraStore.connect(settings, keyspace=f"routing_{uuid.uuid4().hex[:12]}")
    try:
        await store.migrate()
        feeds = [f"timeline:r{i}" for i in range(FEEDS)]
        activities = [Activity(id=f"a{i}", actor="x", verb="pin", object=f"o{i}", ts=1_000 + i) for i in range(3)]
        owners = await _owners(store, feeds)
        assert len(owners) == len(HOSTS)  # the feeds spread over every node: nothing is trivially local

        before = store.requests_by_host()
        await store.apply([TimelineWrite(feed, a, a.ts) for feed in feeds for a in activities])
        written = store.requests_by_host()
        assert _delta(written, before) == owners  # one batch per feed, on its replica

        for feed in feeds:
            assert [a.id for a in await store.read(feed, limit=10)] == ["a2", "a1", "a0"]
        assert _delta(store.requests_by_host(), written) == owners  # one read per feed, on its replica
    finally:
        await store.drop_keyspace()
        await store.close()
