"""Helpers of the pipeline integration tests: a per-test pipeline (topics + keyspace), worker
subprocesses, in-process agents, waiting for consumer lag, and feed snapshots."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fanout.agents import group_id
from fanout.agents.base import Agent
from fanout.agents.lag import consumer_lag
from fanout.agents.supervisor import settings_env, worker_command
from fanout.agents.topics import create_topics, delete_topics
from fanout.agents.worker import build_agent
from fanout.cassandra import CassandraStore
from fanout.settings import Settings
from fanout.store import Store

BOOTSTRAP = "127.0.0.1:9092"
LOG_DIR = Path(os.environ.get("FANOUT_TEST_LOG_DIR", "/tmp/fanout-test-logs"))


def pipeline_settings(**changes: Any) -> Settings:
    """Settings with a unique topic prefix and keyspace, tuned for quick tests."""
    tag = f"t{uuid.uuid4().hex[:20]}"
    base = dict(
        store="cassandra",
        kafka_bootstrap=BOOTSTRAP,
        topic_prefix=f"{tag}.",
        cassandra_keyspace=tag,
        cassandra_consistency="ONE",
        batch_max_wait_ms=20,
        activities_partitions=3,
        follows_partitions=2,
        high_partitions=4,
        low_partitions=2,
    )
    base.update(changes)
    return Settings().replace(**base)


@contextlib.asynccontextmanager
async def pipeline(settings: Settings) -> AsyncIterator[CassandraStore]:
    """Topics and a migrated keyspace for ``settings``; yields a store; drops both after."""
    await create_topics(settings)
    store = await CassandraStore.connect(settings)
    try:
        await store.migrate()
        yield store
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()
            await delete_topics(settings)


class WorkerProcess:
    """``python -m fanout worker ...`` as a subprocess with the test's settings."""

    def __init__(self, settings: Settings, role: str, *args: str, name: str | None = None) -> None:
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name or "-".join([role, *[a for a in args if not a.startswith("-")]])
        self.log_path = LOG_DIR / f"{settings.topic_prefix}{self.name}.{time.monotonic_ns()}.log"
        env = {**os.environ, **settings_env(settings), "PYTHONUNBUFFERED": "1"}
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(
            worker_command(role, *args), env=env, stdout=self._log, stderr=subprocess.STDOUT,
            cwd=Path(__file__).resolve().parents[2],
        )

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._log.close()

    async def terminate(self, within: float = 15.0) -> int:
        """SIGTERM, then wait for the exit code (SIGKILL and fail after ``within`` seconds)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            code = await asyncio.wait_for(asyncio.to_thread(self.proc.wait), within)
        except TimeoutError:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"{self.name} did not stop within {within}s\n{self.log()[-3000:]}") from None
        finally:
            self._log.close()
        return code


class InProcess:
    """An agent running as an asyncio task of the test (sharing a store)."""

    def __init__(self, settings: Settings, store: Store, role: str, priority: str | None = None,
                 **options: Any) -> None:
        self.agent: Agent = build_agent(role, settings, store, priority=priority, **options)
        self.stop = asyncio.Event()
        self.task = asyncio.ensure_future(self.agent.run(self.stop))

    async def ready(self, within: float = 30.0) -> None:
        waiter = asyncio.ensure_future(self.agent.running.wait())
        done, _ = await asyncio.wait({waiter, self.task}, timeout=within, return_when=asyncio.FIRST_COMPLETED)
        if self.task in done:
            waiter.cancel()
            self.task.result()
            raise AssertionError(f"{self.agent.role} exited before it started")
        if waiter not in done:
            waiter.cancel()
            raise AssertionError(f"{self.agent.role} did not start within {within}s")

    async def close(self, within: float = 15.0) -> None:
        self.stop.set()
        try:
            await asyncio.wait_for(asyncio.shield(self.task), within)
        except TimeoutError:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            raise


@contextlib.asynccontextmanager
async def all_agents(settings: Settings, store: Store, *, ready: bool = False) -> AsyncIterator[list[InProcess]]:
    """Every agent (planner, follows, the high and the low writer) in this process, stopped on
    leaving; ``ready``: first wait until each one joined its group."""
    agents = [InProcess(settings, store, "planner"), InProcess(settings, store, "follows"),
              InProcess(settings, store, "writer", "high"), InProcess(settings, store, "writer", "low")]
    try:
        if ready:
            for agent in agents:
                await agent.ready()
        yield agents
    finally:
        for agent in agents:
            await agent.close()


async def drain_all(settings: Settings, store: Store, within: float = 60.0) -> None:
    """Run every agent in this process until every group has lag 0, then stop them."""
    async with all_agents(settings, store):
        await wait_drained(settings, within=within)


async def wait_for(
    predicate: Callable[[], Awaitable[bool]], within: float, what: str, interval: float = 0.2
) -> float:
    """Poll ``predicate`` until true; return the seconds it took."""
    start = time.monotonic()
    while True:
        if await predicate():
            return time.monotonic() - start
        if time.monotonic() - start > within:
            raise AssertionError(f"timed out after {within}s waiting for {what}")
        await asyncio.sleep(interval)


async def lags(settings: Settings) -> dict[str, tuple[int, int]]:
    """group -> (committed records, lag), summed over partitions."""
    out: dict[str, tuple[int, int]] = {}
    for row in await consumer_lag(settings):
        committed, lag = out.get(row.group, (0, 0))
        out[row.group] = (committed + (row.committed or 0), lag + row.lag)
    return out


async def wait_drained(settings: Settings, within: float = 60.0, roles: Iterable[str] | None = None) -> None:
    """Wait until every agent group (or the given ``roles``) has lag 0 on every partition."""
    p = settings.topic_prefix
    all_groups = {
        "planner": group_id(p, "planner"),
        "follows": group_id(p, "follows"),
        "writer-high": group_id(p, "writer", "high"),
        "writer-low": group_id(p, "writer", "low"),
    }
    groups = [all_groups[r] for r in (roles or all_groups)]

    async def drained() -> bool:
        state = await lags(settings)
        return all(state.get(g, (0, 0))[1] == 0 for g in groups)

    # Two consecutive drained observations: the planner may produce chunks right after the
    # writers looked drained.
    await wait_for(drained, within, f"lag 0 in {groups}")
    await asyncio.sleep(0.3)
    await wait_for(drained, within, f"lag 0 in {groups}")


async def produce_raw(
    settings: Settings, topic: str, records: Iterable[tuple[bytes | None, bytes | None]]
) -> list[Any]:
    """Produce (key, value) records with a bare aiokafka producer, as another service would;
    return their RecordMetadata in order."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all",
                                enable_idempotence=True, max_request_size=2 * 1024 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(topic), value=v, key=k) for k, v in records]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


async def read_topic(settings: Settings, topic: str, expected: int, within: float = 30.0) -> list[Any]:
    """Read ``expected`` records of a topic from the beginning (no group)."""
    consumer = AIOKafkaConsumer(settings.topic(topic), bootstrap_servers=settings.kafka_bootstrap,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + within
        while len(records) < expected and time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records.extend(batch)
        return records
    finally:
        await consumer.stop()


async def feed_ids(store: Store, feed: str, limit: int = 100_000) -> list[str]:
    return [a.id for a in await store.read(feed, limit=limit)]


async def snapshot(store: Store, feeds: Iterable[str], concurrency: int = 64) -> dict[str, list[tuple[Any, ...]]]:
    """feed -> [(ts, id, actor, verb, object, target, extra)] newest first."""
    sem = asyncio.Semaphore(concurrency)

    async def one(feed: str) -> tuple[str, list[tuple[Any, ...]]]:
        async with sem:
            page = await store.read(feed, limit=100_000)
        return feed, [(a.ts, a.id, a.actor, a.verb, a.object, a.target, a.extra) for a in page]

    return dict(await asyncio.gather(*(one(f) for f in feeds)))


def python() -> str:
    return sys.executable


def run_cli(settings: Settings, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """``python -m fanout ARGS`` with the test's settings (blocking: wrap in ``asyncio.to_thread``)."""
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run([sys.executable, "-m", "fanout", *args], env=env, input=stdin, capture_output=True,
                          text=True, timeout=120, check=False)


def record_headers(record: Any) -> dict[str, str]:
    """A consumed record's headers as text."""
    return {name: value.decode() for name, value in record.headers}


async def produce_to(
    settings: Settings, topic: str, partition: int, records: Iterable[tuple[bytes | None, bytes | None]]
) -> list[Any]:
    """Produce (key, value) records to one partition of a pipeline topic, in order."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap, acks="all", enable_idempotence=True)
    await producer.start()
    try:
        futures = [await producer.send(settings.topic(topic), value=v, key=k, partition=partition)
                   for k, v in records]
        return list(await asyncio.gather(*futures))
    finally:
        await producer.stop()


async def committed_offsets(settings: Settings, group: str) -> dict[int, int | None]:
    """partition -> the group's committed offset (None: never committed), on its topic."""
    return {row.partition: row.committed for row in await consumer_lag(settings) if row.group == group}
