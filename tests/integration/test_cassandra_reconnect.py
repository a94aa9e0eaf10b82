"""A store tries a node marked down again within ``RECONNECT_MAX_S`` (2 s), however long it was
down: with the driver's default (up to 600 s between attempts) a node back after a 40 s outage
went unused for up to ~30 s more, and one back after 10 minutes for up to 10 more. The recovery
itself, Cassandra killed and restarted mid-fanout, is ``tests/chaos/test_server_restarts.py``."""

from __future__ import annotations

import itertools

import pytest

from fanout import Settings
from fanout.cassandra import CassandraStore
from fanout.cassandra.routing import RECONNECT_MAX_S

pytestmark = pytest.mark.integration


async def test_a_node_marked_down_is_tried_again_every_two_seconds_at_most() -> None:
    store = await CassandraStore.connect(Settings(cassandra_consistency="ONE"))
    try:
        delays = list(itertools.islice(store.cluster.reconnection_policy.new_schedule(), 50))
        assert len(delays) == 50  # never gives up
        assert delays[0] <= 0.5
        assert max(delays) <= RECONNECT_MAX_S <= 2.0
        assert sum(delays) < 50 * RECONNECT_MAX_S  # backs off from the first, up to the bound
    finally:
        await store.close()
