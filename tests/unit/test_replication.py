"""Replication and routing choices that need no server: the topics' replication factor and
min.insync.replicas, the store's consistency levels, and the count of coordinators per node."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cassandra import ConsistencyLevel

from fanout import ConfigError, Settings
from fanout.agents.topics import replication
from fanout.cassandra.pulled import PulledAccounts
from fanout.cassandra.routing import CoordinatorCounts, execution_profile
from fanout.cassandra.statements import Statements
from fanout.cassandra.tracing import DeliveryTables


@pytest.mark.parametrize(
    ("brokers", "factor", "min_insync", "expected"),
    [
        (1, 0, 0, (1, 1)),  # the one-node stack: as before
        (3, 0, 0, (3, 2)),  # a cluster: RF 3, a write survives one broker down
        (5, 0, 0, (3, 2)),  # never more than 3 copies unless asked
        (5, 5, 0, (5, 4)),
        (3, 3, 3, (3, 3)),
        (3, 2, 1, (2, 1)),
    ],
)
def test_topic_replication_follows_the_brokers_unless_set(
    brokers: int, factor: int, min_insync: int, expected: tuple[int, int]
) -> None:
    settings = Settings(kafka_replication_factor=factor, kafka_min_insync_replicas=min_insync)
    assert replication(settings, brokers) == expected


def test_a_replication_factor_above_the_brokers_says_so() -> None:
    settings = Settings(kafka_replication_factor=3, kafka_bootstrap="b1:9092")
    with pytest.raises(ConfigError, match="FANOUT_KAFKA_REPLICATION_FACTOR=3 needs 3 brokers; b1:9092 has 1"):
        replication(settings, 1)


class Prepared:
    def __init__(self, cql: str) -> None:
        self.cql = cql
        self.consistency_level: int | None = None
        self.is_idempotent = False


class Session:
    prepare = Prepared


def test_writes_take_the_profile_level_and_reads_their_own() -> None:
    settings = Settings(cassandra_write_consistency="QUORUM", cassandra_read_consistency="LOCAL_ONE")
    profile = execution_profile(settings, request_timeout=5.0)
    assert profile.consistency_level == ConsistencyLevel.QUORUM

    stmts = Statements(Prepared, "ks", 0, ConsistencyLevel.LOCAL_ONE)
    reads = [s for s in vars(stmts).values() if s.cql.startswith("SELECT")]
    writes = [s for s in vars(stmts).values() if not s.cql.startswith("SELECT")]
    assert len(reads) >= 10 and len(writes) >= 10
    assert {s.consistency_level for s in reads} == {ConsistencyLevel.LOCAL_ONE}
    assert {s.consistency_level for s in writes} == {None}  # the profile's: QUORUM here


async def test_the_pulled_accounts_and_trace_reads_take_the_read_level_too() -> None:
    """Every timeline read fetches the pulled accounts: at the write level (the session's), a
    read failed where the operator's read level would have answered (``ANY`` refuses every read;
    ``ALL`` for writes, ``ONE`` for reads, one node down)."""

    class Mixins(PulledAccounts, DeliveryTables):
        session = Session()
        keyspace = "ks"
        settings = Settings(cassandra_write_consistency="ANY", cassandra_read_consistency="LOCAL_ONE")

    store = Mixins()
    statements = [*vars(await store._pulled_statements()).values(), *vars(await store._trace_statements()).values()]
    reads = [s for s in statements if s.cql.startswith("SELECT")]
    assert len(reads) == 4
    assert {s.consistency_level for s in reads} == {ConsistencyLevel.LOCAL_ONE}
    assert {s.consistency_level for s in statements if s not in reads} == {None}


@dataclass(frozen=True)
class Host:
    address: str


class Child:
    """A policy whose plan is every host, starting at the one the query names."""

    def __init__(self, hosts: list[Host]) -> None:
        self.hosts = hosts

    def make_query_plan(self, working_keyspace: Any = None, query: Any = None) -> Iterator[Host]:
        start = 0 if query is None else query
        yield from self.hosts[start:] + self.hosts[:start]


def test_coordinators_are_counted_once_per_request_and_not_for_the_drivers_own() -> None:
    hosts = [Host("10.0.0.1"), Host("10.0.0.2"), Host("10.0.0.3")]
    policy = CoordinatorCounts(Child(hosts))
    for query in [1, 1, 2, 0, 1]:
        plan = policy.make_query_plan("ks", query)
        next(plan)
        next(plan)  # a retry on the next host is no new request
    list(policy.make_query_plan("ks", None))  # prepare, control connection
    assert policy.snapshot() == {"10.0.0.1": 1, "10.0.0.2": 3, "10.0.0.3": 1}
