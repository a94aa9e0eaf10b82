"""Node failures during a large fanout: a broker, then a Cassandra node, SIGKILLed and restarted later.

The agents (planner, two high writers, a low writer: separate processes, none supervised) keep
going through the outage without a restart: progress is committed while the node is down, every
agent still runs at the end and exits 0 on SIGTERM. Afterwards every timeline equals the
reference: nothing lost, nothing duplicated.

Why it holds: topics have replication factor 3 and min.insync.replicas 2 and the producers
``acks=all``, so a broker's death loses no acknowledged record and its partitions get a new leader
among the in-sync replicas; the keyspace has replication factor 3 and writes and reads run at
LOCAL_QUORUM, so two replicas acknowledge every write and any two answer every read while one node
is down; a write in flight to the dead node fails as a retriable StoreError, the writer re-delivers
its batch (idempotent upserts) and commits only what was acknowledged.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable

import pytest

from fanout.cassandra import CassandraStore
from fanout.errors import StoreError
from fanout.kafka import KafkaClients
from fanout.settings import Settings
from tests.cluster.conftest import Cluster
from tests.cluster.workload import StarFanout, agents, alive, note, stop_all, tails
from tests.integration.pipeline_helpers import pipeline, wait_drained

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

FOLLOWERS = 2000
ACTIVITIES = 20  # 40,000 timeline rows, 400 chunk messages


def _settings(cluster: Cluster) -> Settings:
    return cluster.settings(batch_max_records=10, high_partitions=6, low_partitions=3)


async def _leader_of(settings: Settings, topic: str, partition: int) -> str:
    async with KafkaClients(settings).admin() as admin:
        (described,) = await admin.describe_topics([settings.topic(topic)])
    leader = next(p["leader"] for p in described["partitions"] if p["partition"] == partition)
    return f"kafka-{leader}"


async def _outage(
    cluster: Cluster, star: StarFanout, node: str, during_outage: Awaitable[None] | None = None
) -> dict[str, float]:
    """Kill ``node`` once a fifth of the chunks is written; require progress while it is down;
    restart it; return what happened when (seconds)."""
    started = time.monotonic()
    before = await star.wait_written(star.chunks // 5, 600, "a fifth of the fanout written")
    note(f"{before} of {star.chunks} chunks written: SIGKILL {node} (pid {cluster.kill(node)})")
    killed_at = time.monotonic()
    if during_outage is not None:
        await during_outage
    after = await star.wait_written(before + star.chunks // 5, 600, f"progress while {node} is down")
    progressed = time.monotonic()
    note(f"{after} chunks written with {node} down: restarting it")
    restart_took = await cluster.start_async(node)
    note(f"{node} restarted in {restart_took:.1f}s; {await star.written()} chunks written")
    return {"killed after": killed_at - started, "progress while down": progressed - killed_at,
            "restart": restart_took, "written at kill": before}


async def test_a_broker_killed_mid_fanout(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(cluster)
    star = StarFanout(settings, followers=FOLLOWERS, activities=ACTIVITIES)
    async with pipeline(settings) as store:
        await star.follow(store)
        procs = agents(settings)
        try:
            await star.publish()
            victim = await _leader_of(settings, "high", 0)
            timings = await _outage(cluster, star, victim)
            await wait_drained(settings, within=900, roles=["planner", "writer-high", "writer-low"])
            assert not alive(procs), tails(procs)
        finally:
            stopped = await stop_all(procs)
        assert all(code == 0 for code, _, _ in stopped.values()), f"{stopped}\n{tails(procs)}"
        assert await star.written() == star.chunks
        assert await star.wrong_feeds(store) == []
    with capsys.disabled():
        print(f"\n[cluster] {victim} SIGKILLed mid-fanout: {timings}; agents {stopped}")


async def _all_consistency_fails(settings: Settings) -> None:
    """While a replica is down, a write at ALL is refused (retriable): the consistency level is real."""
    store = await CassandraStore.connect(settings.replace(cassandra_write_consistency="ALL"))
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                await store.set_active("consistency-probe", 0, 1)
            except StoreError as exc:
                assert exc.retriable, exc
                return
            assert time.monotonic() < deadline, "a write at ALL kept succeeding with a node down"
            await asyncio.sleep(1)
    finally:
        await store.close()


async def test_a_cassandra_node_killed_mid_fanout(cluster: Cluster, capsys: pytest.CaptureFixture[str]) -> None:
    settings = _settings(cluster)
    star = StarFanout(settings, followers=FOLLOWERS, activities=ACTIVITIES)
    async with pipeline(settings) as store:
        await star.follow(store)
        procs = agents(settings)
        try:
            await star.publish()
            timings = await _outage(cluster, star, "cassandra-2", _all_consistency_fails(settings))
            await wait_drained(settings, within=900, roles=["planner", "writer-high", "writer-low"])
            assert not alive(procs), tails(procs)
        finally:
            stopped = await stop_all(procs)
        assert all(code == 0 for code, _, _ in stopped.values()), f"{stopped}\n{tails(procs)}"
        assert await star.written() == star.chunks
        assert await star.wrong_feeds(store) == []
    with capsys.disabled():
        print(f"\n[cluster] cassandra-2 SIGKILLed mid-fanout: {timings}; agents {stopped}")
