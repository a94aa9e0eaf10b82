"""Issue 11 item 2: agents heal from fatal Kafka client states, report their health, exit when
they cannot make progress, and keep their logs readable during an outage.

The shared broker is never restarted here: a fatal producer is made the way a broker restart
makes it (its sender task dies with ``OutOfOrderSequenceNumber``), and an outage is simulated in
this process only (every aiokafka connection breaks and none can be opened), so aiokafka's real
retry loops run and log as they would.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from aiokafka import client as aiokafka_client
from aiokafka.conn import AIOKafkaConnection, CloseReason
from aiokafka.errors import KafkaConnectionError, OutOfOrderSequenceNumber

from fanout.agents import group_id
from fanout.errors import StoreError
from fanout.store import TimelineWrite
from tests.integration.pipeline_helpers import (
    InProcess,
    WorkerProcess,
    feed_ids,
    lags,
    pipeline,
    pipeline_settings,
    produce_raw,
    wait_drained,
    wait_for,
)

pytestmark = pytest.mark.integration


def _event(activity_id: str, minute: int) -> bytes:
    return json.dumps({"actor": "ann", "verb": "post", "object": activity_id, "id": activity_id,
                       "time": f"2024-01-01T00:{minute:02d}:00Z"}).encode()


def _kafka_producer(agent: Any) -> Any:
    """The aiokafka producer inside an agent's producer handle."""
    return getattr(agent.producer, "kafka", agent.producer)


async def test_a_planner_whose_producer_died_replaces_it_and_carries_on() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        followers = [f"p{i}" for i in range(250)]
        for follower in followers:
            await store.set_follow(follower, "ann", True, 1)
        planner = InProcess(settings, store, "planner")
        writer = InProcess(settings, store, "writer", "low")
        try:
            await planner.ready()
            await produce_raw(settings, "activities", [(b"ann", _event("warm-up", 1))])
            await wait_drained(settings, roles=["planner"], within=60)

            # What a broker restart does to aiokafka's idempotent producer: the next produce
            # request fails with OutOfOrderSequenceNumber and the sender task dies with it.
            broken = _kafka_producer(planner.agent)
            sender = broken._sender
            real = sender._send_produce_req
            calls: list[int] = []

            async def out_of_order(node_id: int, batches: Any) -> Any:
                calls.append(node_id)
                if len(calls) == 1:
                    raise OutOfOrderSequenceNumber()
                return await real(node_id, batches)

            sender._send_produce_req = out_of_order
            await produce_raw(settings, "activities", [(b"ann", _event("after-restart", 2))])
            await wait_drained(settings, within=60)
            assert calls, "the injected failure never ran"
            assert sender.sender_task.done()  # the old producer is dead for good ...
            assert _kafka_producer(planner.agent) is not broken  # ... and was replaced
        finally:
            await planner.close()
            await writer.close()
        assert (await lags(settings))[group_id(settings.topic_prefix, "planner")] == (2, 0)
        for follower in followers:
            assert await feed_ids(store, f"timeline:{follower}") == ["after-restart", "warm-up"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def test_a_worker_serves_healthz_next_to_metrics() -> None:
    settings = pipeline_settings()
    port = _free_port()
    async with pipeline(settings):
        worker = WorkerProcess(settings, "follows", "--metrics-port", str(port))
        try:
            async def healthy() -> bool:
                try:
                    status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
                except OSError:
                    return False
                return status == 200 and json.loads(body)["state"] == "running"

            await wait_for(healthy, 60, "/healthz answering 200 running")
            status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/healthz")
            report = json.loads(body)
            assert report["role"] == "follows" and report["healthy"] is True
            assert report["last_progress_age_s"] < 5
            status, body = await asyncio.to_thread(_get, f"http://127.0.0.1:{port}/metrics")
            assert status == 200
            assert b'fanout_agent_last_progress_timestamp_seconds{role="follows"}' in body
            assert b'fanout_agent_state{role="follows",state="running"} 1.0' in body
        finally:
            assert await worker.terminate() == 0, worker.log()[-3000:]


class DownStore:
    """Delegates to a real store; every timeline write fails with a retriable ``StoreError``."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.failures = 0

    async def apply(self, writes: Sequence[TimelineWrite]) -> None:
        self.failures += 1
        raise StoreError("write timeout (injected)", retriable=True)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_an_agent_that_cannot_make_progress_says_so_then_exits() -> None:
    settings = pipeline_settings(agent_stall_timeout_s=4.0)
    async with pipeline(settings) as real:
        store = DownStore(real)
        from fanout.activity import Activity
        from fanout.codec import ChunkMessage, encode

        activity = Activity(id="x", actor="ann", verb="pin", object="o", ts=1_700_000_000_000_000)
        chunk = ChunkMessage(op="add", priority="low", activity=activity, feeds=["timeline:z"], write_ts=activity.ts)
        await produce_raw(settings, "low", [(b"z", encode(chunk))])
        writer = InProcess(settings, store, "writer", "low")
        await writer.ready()
        states: list[str] = []
        started = time.monotonic()
        while not writer.task.done() and time.monotonic() - started < 30:
            states.append(writer.agent.health.snapshot["state"])
            await asyncio.sleep(0.2)
        with pytest.raises(Exception, match="no progress for") as info:
            await writer.task
        took = time.monotonic() - started
        assert type(info.value).__name__ == "Stalled"
        assert 4.0 <= took < 15, took
        assert "retrying" in states and store.failures > 1
        committed, lag = (await lags(settings))[group_id(settings.topic_prefix, "writer", "low")]
        assert (committed, lag) == (0, 1)  # nothing committed past the unwritten chunk


@contextlib.contextmanager
def kafka_outage() -> Iterator[None]:
    """Every aiokafka connection of this process breaks and no new one can be opened."""
    real_send = AIOKafkaConnection.send
    real_create = aiokafka_client.create_conn

    def broken_send(self: AIOKafkaConnection, request: Any, expect_response: bool = True) -> Any:
        self.close(reason=CloseReason.CONNECTION_BROKEN)
        raise KafkaConnectionError("connection reset (simulated outage)")

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise ConnectionRefusedError(111, "Connect call failed (simulated outage)")

    AIOKafkaConnection.send = broken_send
    aiokafka_client.create_conn = refused
    try:
        yield
    finally:
        AIOKafkaConnection.send = real_send
        aiokafka_client.create_conn = real_create


async def test_an_outage_logs_one_line_when_it_starts_and_one_when_it_ends(caplog: pytest.LogCaptureFixture) -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        await store.set_follow("fan", "ann", True, 1)
        agents = [InProcess(settings, store, "planner"), InProcess(settings, store, "writer", "low"),
                  InProcess(settings, store, "writer", "high")]
        try:
            for agent in agents:
                await agent.ready()
            await produce_raw(settings, "activities", [(b"ann", _event("before", 1))])
            await wait_drained(settings, roles=["planner", "writer-low", "writer-high"], within=60)
            caplog.clear()
            caplog.set_level(logging.INFO)
            with kafka_outage():
                await asyncio.sleep(12)
            lines = [r for r in caplog.records if r.levelno >= logging.WARNING]
            await asyncio.sleep(6)  # the clients reconnect; the agents notice
            await produce_raw(settings, "activities", [(b"ann", _event("after", 2))])
            await wait_drained(settings, roles=["planner", "writer-low", "writer-high"], within=60)
        finally:
            for agent in agents:
                await agent.close()
        text = [r.getMessage() for r in caplog.records]
        down = [t for t in text if "Kafka unreachable since" in t]
        back = [t for t in text if "Kafka back after" in t]
        assert len(down) == len(agents) and len(back) == len(agents), (down, back)
        # one line per agent and state change, plus at most a few first-of-their-kind lines
        assert len(lines) <= 6 * len(agents), "\n".join(r.getMessage() for r in lines)
        assert await feed_ids(store, "timeline:fan") == ["after", "before"]


async def test_a_consumer_whose_fetches_keep_failing_is_replaced() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        planner = InProcess(settings, store, "planner")
        try:
            await planner.ready()
            broken = planner.agent.consumer
            failures: list[str] = []

            async def failing_getmany(*args: Any, **kwargs: Any) -> Any:
                failures.append("x")  # what a consumer whose coordinator task died does on every call
                raise KafkaConnectionError("the coordination task died (injected)")

            broken.getmany = failing_getmany

            async def failing() -> bool:  # a fetch in flight when patched still ends normally
                return bool(failures)

            async def renewed() -> bool:  # the renewal drains, stops the old consumer, starts a new one
                consumer = planner.agent.consumer
                return consumer is not None and consumer is not broken and planner.agent.running.is_set()

            await wait_for(failing, within=30, what="the patched fetch to be called")
            await produce_raw(settings, "activities", [(b"ann", _event("while-broken", 1))])
            await wait_for(renewed, within=60, what="the consumer to be replaced")
            await wait_drained(settings, roles=["planner"], within=60)
            assert len(failures) >= 3
            assert planner.agent.consumer_renewals == 1
        finally:
            await planner.close()
        assert await feed_ids(store, "user:ann") == ["while-broken"]
