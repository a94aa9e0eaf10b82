"""The end-to-end scenario on the three-node cluster: the same feeds as the eager mode.

Graph, activities, removes, follows and unfollows produced by a bare Kafka client to topics with
replication factor 3 and min.insync.replicas 2; agents as real processes; timelines in a keyspace
with replication factor 3, written and read at LOCAL_QUORUM.
"""

from __future__ import annotations

import pytest

from fanout.agents.topics import replication
from tests.cluster.conftest import Cluster
from tests.integration.scenario import feeds_equal_eager_mode

pytestmark = [pytest.mark.cluster, pytest.mark.integration]


async def test_cluster_feeds_equal_eager_mode(cluster: Cluster) -> None:
    settings = cluster.settings()
    assert replication(settings, 3) == (3, 2)
    await feeds_equal_eager_mode(settings, drain_within=240)  # six JVMs share 2 cores
