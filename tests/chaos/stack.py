"""One scenario's pipeline: its own topic prefix and keyspace, created with the product's commands
(``fanout topics create``, ``fanout migrate``) as a user would, the agents' environment, a log
directory, and the summary line each run prints."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient

from .kafka_io import BOOTSTRAP
from .processes import ROOT, Fleet

TOPICS = ("activities", "follows", "high", "low", "dead")


@dataclass
class Stack:
    name: str
    log_dir: Path
    settings: dict[str, str] = field(default_factory=dict)  # FANOUT_* overrides of the scenario
    tag: str = field(default_factory=lambda: f"chaos{uuid.uuid4().hex[:12]}")

    @property
    def prefix(self) -> str:
        return f"{self.tag}."

    @property
    def keyspace(self) -> str:
        return self.tag

    @property
    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("FANOUT_")}
        return {
            **base,
            "PYTHONUNBUFFERED": "1",
            "FANOUT_KAFKA_BOOTSTRAP": BOOTSTRAP,
            "FANOUT_TOPIC_PREFIX": self.prefix,
            "FANOUT_CASSANDRA_KEYSPACE": self.keyspace,
            "FANOUT_BATCH_MAX_WAIT_MS": "20",
            **self.settings,
        }

    def fanout(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run ``fanout ARGS`` with the scenario's settings (raises with its output if it fails)."""
        proc = subprocess.run([sys.executable, "-m", "fanout", *args], env=self.env, cwd=ROOT, capture_output=True,
                              text=True, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise AssertionError(f"fanout {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    async def create(self, attempts: int = 4) -> None:
        """``fanout topics create`` and ``fanout migrate`` (retried: a busy node may time out)."""
        for command in (("topics", "create"), ("migrate",)):
            for attempt in range(attempts):
                try:
                    await asyncio.to_thread(self.fanout, *command)
                    break
                except AssertionError:
                    if attempt == attempts - 1:
                        raise
                    await asyncio.sleep(5)

    def fleet(self, **options: Any) -> Fleet:
        return Fleet(self.env, self.log_dir, **options)

    async def drop(self) -> None:
        """Delete the scenario's topics and keyspace (the logs stay)."""
        admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            doomed = [f"{self.prefix}{t}" for t in TOPICS if f"{self.prefix}{t}" in existing]
            if doomed:
                await admin.delete_topics(doomed)
        finally:
            await admin.close()
        await asyncio.to_thread(_drop_keyspace, self.keyspace)


def _drop_keyspace(keyspace: str) -> None:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy

    profile = ExecutionProfile(load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"),
                               request_timeout=120)
    cluster = Cluster(["127.0.0.1"], execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=20)
    try:
        session = cluster.connect()
        session.execute(session.prepare(f"DROP KEYSPACE IF EXISTS {keyspace}"))
    finally:
        cluster.shutdown()
