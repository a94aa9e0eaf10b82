"""Where requests go and at which consistency: the driver's execution profile of a store.

* **Token-aware routing.** ``TokenAwarePolicy(DCAwareRoundRobinPolicy())``: the driver hashes the
  statement's routing key (the partition key: a feed, an activity id, a user) with the cluster's
  token map and sends the request to a replica of that partition in the local data centre, the
  first replica in ring order while it is up (``shuffle_replicas`` off: the same partition always
  has the same coordinator, which then writes to the other replicas itself); round robin for
  statements without a routing key (DDL, ``SELECT DISTINCT``). A per-feed UNLOGGED batch takes the
  routing key of its first statement, so it goes to a replica of its one partition too.
* **Consistency.** The profile's level is ``settings.write_consistency``: every write, batch and
  schema change. Reads are prepared with ``settings.read_consistency`` (``statements``). Both
  default to ``LOCAL_QUORUM``: with replication factor 3 a write is acknowledged by two replicas
  and a read asks two, so a read sees every acknowledged write while any one node is down.
* **Reconnection.** A node marked down is tried again after ~0.5 s, then at most every
  ``RECONNECT_MAX_S`` (2 s; the driver adds up to 15% of jitter), for as long as it is down: the
  driver's default waits up to 600 s between attempts, so a node back after a 40 s outage went
  unused for up to another ~30 s (a chaos test's recovery varied from 2 to 40 s), and after a
  10-minute outage for up to 10 minutes. With one node there is no other node to announce it up,
  so only these attempts find it. Each failed attempt logs a warning: the agents and ``fanout
  serve`` print each distinct one once a minute (``QuietDriverLogs``).
* **Evidence.** ``CoordinatorCounts`` wraps the policy and counts, per node, the requests whose
  plan starts there (the coordinator they were sent to); ``requests_by_host`` reads the counts.

The driver is imported here at module level: ``store`` imports this module inside ``connect``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any, Final

from cassandra import ConsistencyLevel, UnresolvableContactPoints
from cassandra.auth import PlainTextAuthProvider
from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
from cassandra.policies import (
    DCAwareRoundRobinPolicy,
    ExponentialReconnectionPolicy,
    LoadBalancingPolicy,
    TokenAwarePolicy,
)
from cassandra.query import tuple_factory

from ..errors import StoreError
from ..settings import Settings

RECONNECT_FIRST_S: Final = 0.5  # the first attempt after a node is marked down
RECONNECT_MAX_S: Final = 2.0  # then at most this long between attempts (the driver's default: 600 s)


def consistency_level(name: str) -> int:
    """The driver's value of a consistency level name (``Settings`` checked the name)."""
    return int(ConsistencyLevel.name_to_value[name.upper()])


class CoordinatorCounts(LoadBalancingPolicy):  # type: ignore[misc]  # the driver is untyped
    """A load balancing policy that delegates to ``child`` and counts the first host of each query
    plan, per address: the coordinator of every request (retries on other hosts are not counted)."""

    def __init__(self, child: Any) -> None:
        super().__init__()
        self.child = child
        self.counts: dict[str, int] = {}
        self._lock = threading.Lock()  # plans start on the event loop and on the driver's threads

    def make_query_plan(self, working_keyspace: Any = None, query: Any = None) -> Iterator[Any]:
        plan = self.child.make_query_plan(working_keyspace, query)
        if query is None:  # the driver's own requests (prepare, control connection): not counted
            yield from plan
            return
        for n, host in enumerate(plan):
            if n == 0:
                with self._lock:
                    self.counts[host.address] = self.counts.get(host.address, 0) + 1
            yield host

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self.counts)

    # everything else is the child's
    def populate(self, cluster: Any, hosts: Any) -> None:
        self.child.populate(cluster, hosts)

    def distance(self, host: Any) -> Any:
        return self.child.distance(host)

    def check_supported(self) -> None:
        self.child.check_supported()

    def on_up(self, host: Any) -> None:
        self.child.on_up(host)

    def on_down(self, host: Any) -> None:
        self.child.on_down(host)

    def on_add(self, host: Any) -> None:
        self.child.on_add(host)

    def on_remove(self, host: Any) -> None:
        self.child.on_remove(host)


def execution_profile(settings: Settings, *, request_timeout: float) -> ExecutionProfile:
    """The store's default profile: token-aware, counted, at ``settings.write_consistency``, rows as tuples."""
    return ExecutionProfile(
        load_balancing_policy=CoordinatorCounts(TokenAwarePolicy(DCAwareRoundRobinPolicy())),
        consistency_level=consistency_level(settings.write_consistency),
        request_timeout=request_timeout,
        row_factory=tuple_factory,
    )


def build_cluster(settings: Settings, *, request_timeout: float, connection_class: Any) -> Cluster:
    """The driver's cluster for ``settings`` (not connected): hosts, port, protocol version,
    credentials, the profile above and the reconnection policy below."""
    auth = None
    if settings.cassandra_username:
        auth = PlainTextAuthProvider(settings.cassandra_username, settings.cassandra_password)
    version = settings.cassandra_protocol_version
    versioned = {"protocol_version": version} if version else {}
    profile = execution_profile(settings, request_timeout=request_timeout)
    try:
        return Cluster(
            list(settings.cassandra_hosts), port=settings.cassandra_port, **versioned,
            execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connection_class=connection_class,
            auth_provider=auth, connect_timeout=10, reconnection_policy=reconnection_policy(),
        )
    except UnresolvableContactPoints:  # none of the host names resolves (a DNS outage may pass)
        raise StoreError(
            f"no Cassandra host of FANOUT_CASSANDRA_HOSTS ({','.join(settings.cassandra_hosts)}) resolves to an "
            "address: check the names (or the DNS)", retriable=True
        ) from None


def reconnection_policy() -> ExponentialReconnectionPolicy:
    """How soon a node marked down is tried again (see the module docstring)."""
    # max_attempts=None: never give up (the driver's default, 64 attempts, would stop after ~2 minutes
    # at these delays, and a store with one node would never find it again)
    return ExponentialReconnectionPolicy(base_delay=RECONNECT_FIRST_S, max_delay=RECONNECT_MAX_S, max_attempts=None)


def requests_by_host(cluster: Any) -> dict[str, int]:
    """Requests sent to each node (address -> count) since ``cluster`` was built with ``execution_profile``."""
    policy = cluster.profile_manager.profiles[EXEC_PROFILE_DEFAULT].load_balancing_policy
    return policy.snapshot() if isinstance(policy, CoordinatorCounts) else {}
