"""Fixtures for the tests on the three-node cluster (``make up NODES=3``): three KRaft brokers and
three Cassandra nodes on 127.0.0.1, 127.0.0.2 and 127.0.0.3.

These tests carry the ``cluster`` marker (and ``integration``); pytest deselects them unless asked
(``-m cluster``, as ``make test-cluster`` does), since the cluster and the one-node stack bind the
same addresses. The ``cluster`` fixture fails, never skips, when a node does not answer, and makes
sure before and after every test that all six nodes run: a test that SIGKILLs a node and fails
before restarting it leaves no hole for the next one.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fanout.settings import Settings
from tests.integration.pipeline_helpers import pipeline_settings

ROOT = Path(__file__).resolve().parents[2]
NUMBERS = (1, 2, 3)
NODES = tuple(f"{kind}-{n}" for kind in ("kafka", "cassandra") for n in NUMBERS)
BOOTSTRAP = ",".join(f"127.0.0.{n}:9092" for n in NUMBERS)
HOSTS = tuple(f"127.0.0.{n}" for n in NUMBERS)


def _host(node: str) -> str:
    return f"127.0.0.{node.rsplit('-', 1)[1]}"


class Cluster:
    """The nodes `make up NODES=3` started in this checkout: their pids, SIGKILL and restart."""

    def settings(self, **changes: Any) -> Settings:
        """Pipeline settings (unique topics and keyspace) on the cluster: RF 3, LOCAL_QUORUM."""
        base: dict[str, Any] = dict(
            kafka_bootstrap=BOOTSTRAP, cassandra_hosts=HOSTS, cassandra_replication=3,
            cassandra_consistency="LOCAL_QUORUM",
        )
        return pipeline_settings(**{**base, **changes})

    def pid(self, node: str) -> int | None:
        """The node's pid while it runs, else None."""
        try:
            pid = int((ROOT / ".local" / node / "pid").read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    def answers(self, node: str) -> bool:
        """True when the node answers its protocol and sees the whole cluster (scripts/wait_ready.py)."""
        kind = node.split("-")[0]
        probe = [sys.executable, str(ROOT / "scripts" / "wait_ready.py"), kind, "--host", _host(node),
                 "--nodes", "3", "--once"]
        return subprocess.run(probe, capture_output=True, check=False).returncode == 0

    def kill(self, node: str) -> int:
        """SIGKILL the node (no shutdown code runs); return its pid once it is gone."""
        pid = self.pid(node)
        assert pid is not None, f"{node} is not running"
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        return pid

    def start(self, node: str) -> float:
        """Start the node again (``scripts/services.sh up NODE``) and wait until it is ready; the seconds it took."""
        started = time.monotonic()
        result = subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "up", node],
                                capture_output=True, text=True, check=False, cwd=ROOT)
        assert result.returncode == 0, f"restarting {node} failed:\n{result.stdout}\n{result.stderr}"
        return time.monotonic() - started

    async def start_async(self, node: str) -> float:
        return await asyncio.to_thread(self.start, node)

    def ensure_up(self) -> None:
        """Restart every node that a test left down; fail when one does not come back."""
        for node in NODES:
            if self.pid(node) is None:
                self.start(node)


@pytest.fixture(scope="session")
def cluster_nodes() -> Cluster:
    cluster = Cluster()
    down = [node for node in NODES if not cluster.answers(node)]
    if down:
        pytest.fail(f"the three-node cluster is not up ({', '.join(down)} not answering): "
                    "run `make up NODES=3` first (it cannot run beside the one-node stack)", pytrace=False)
    return cluster


@pytest.fixture
def cluster(cluster_nodes: Cluster) -> Iterator[Cluster]:
    """The running cluster; every node runs again after the test."""
    cluster_nodes.ensure_up()
    try:
        yield cluster_nodes
    finally:
        cluster_nodes.ensure_up()
