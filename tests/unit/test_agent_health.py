"""An agent's health state and its Kafka connectivity log lines, without a server (issue 11.2)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from fanout.agents.connectivity import KafkaConnectivity, QuietKafkaLogs
from fanout.agents.health import Health, Stalled


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_idle_is_progress_and_pending_work_without_commits_stalls() -> None:
    clock = Clock()
    health = Health("writer-low", stall_timeout_s=10, clock=clock)
    clock.now += 60
    health.update(pending=False, failing=[], kafka_down_since=None)  # nothing to do: fine
    assert health.state == "running" and health.snapshot["healthy"]
    clock.now += 5
    health.update(pending=True, failing=["low[0]"], kafka_down_since=None)
    assert health.state == "retrying" and not health.snapshot["healthy"]
    clock.now += 6
    with pytest.raises(Stalled, match="no progress for 11s"):
        health.update(pending=True, failing=["low[0]"], kafka_down_since=None)
    assert health.state == "stalled"


def test_an_outage_does_not_count_towards_the_stall() -> None:
    clock = Clock()
    health = Health("planner", stall_timeout_s=10, clock=clock)
    health.update(pending=True, failing=[], kafka_down_since=None)
    for _ in range(10):
        clock.now += 5
        health.update(pending=True, failing=[], kafka_down_since="12:00:00 (5 s)")
        assert health.state == "kafka-unreachable"
    clock.now += 5
    health.update(pending=True, failing=[], kafka_down_since=None)  # back: the timer starts again
    assert health.state == "running"
    health.progress()
    assert health.snapshot["last_progress_age_s"] == 0


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord("aiokafka", logging.ERROR, "client.py", 1, message, args, None)


async def test_one_line_when_kafka_goes_and_one_when_it_comes_back(caplog: pytest.LogCaptureFixture) -> None:
    up = asyncio.Event()

    async def probe() -> None:
        if not up.is_set():
            raise ConnectionRefusedError("refused")

    tracker = KafkaConnectivity("planner", probe, probe_every=0.05)
    quiet = QuietKafkaLogs(tracker)
    caplog.set_level(logging.INFO, logger="fanout.agents")
    passed = [quiet.filter(_record("Unable to update metadata from %s", [1])) for _ in range(3)]
    assert passed == [True, False, False]  # the first of its kind only, even before the probe says
    await asyncio.sleep(0.02)
    assert tracker.is_down
    passed = [quiet.filter(_record("Unable connect to node with id %s", i)) for i in range(1000)]
    assert not any(passed)
    up.set()
    await asyncio.sleep(0.2)
    assert not tracker.is_down
    lines = [r.getMessage() for r in caplog.records if r.name == "fanout.agents"]
    assert len(lines) == 2, lines
    assert lines[0].startswith("planner: Kafka unreachable since ")
    assert lines[1].startswith("planner: Kafka back after ") and "1002 client log lines suppressed" in lines[1]
    await tracker.close()
