"""Fixtures for integration tests against the real local Kafka broker and Cassandra node.

These fixtures never start servers: `make up` (scripts/services.sh up) does that before
`make test`. When a server is not reachable they fail with a message saying so.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from cassandra.cluster import Session

KAFKA_HOST, KAFKA_PORT = "127.0.0.1", 9092
CASSANDRA_HOST, CASSANDRA_PORT = "127.0.0.1", 9042


def _require_port(service: str, host: str, port: int) -> None:
    try:
        with socket.create_connection((host, port), timeout=2.0):
            return
    except OSError as exc:
        pytest.fail(
            f"{service} is not reachable on {host}:{port} ({exc}); "
            "run `make up` (scripts/services.sh up) to start the local services",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def kafka_bootstrap() -> str:
    """Bootstrap address of the local Kafka broker ("127.0.0.1:9092")."""
    _require_port("Kafka", KAFKA_HOST, KAFKA_PORT)
    return f"{KAFKA_HOST}:{KAFKA_PORT}"


@pytest.fixture(scope="session")
def cassandra_session() -> Iterator[Session]:
    """A cassandra-driver session on the local node, shut down at the end of the test session."""
    _require_port("Cassandra", CASSANDRA_HOST, CASSANDRA_PORT)
    from cassandra import ProtocolVersion
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    # Execution profiles, not the legacy Cluster(load_balancing_policy=...) keyword, which
    # raises a DeprecationWarning (an error under the project's filterwarnings).
    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"),
        request_timeout=30,
    )
    cluster = Cluster(
        [CASSANDRA_HOST],
        port=CASSANDRA_PORT,
        protocol_version=ProtocolVersion.V5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=10,
    )
    try:
        yield cluster.connect()
    finally:
        cluster.shutdown()
