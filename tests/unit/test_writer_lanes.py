"""Writer lanes: LOW writers fetch larger batches with a longer wait, HIGH writers keep small ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fanout import MemoryStore, Settings
from fanout.agents import worker
from fanout.agents.planner import PlannerAgent
from fanout.agents.writer import WriterAgent
from fanout.errors import EXIT_UNAVAILABLE, ConfigError
from fanout.kafka import KafkaClients
from fanout.store import Store


def test_low_writers_take_the_low_batch_settings_and_high_writers_the_others() -> None:
    settings = Settings(batch_max_records=7, batch_max_wait_ms=11, low_batch_max_records=900, low_batch_max_wait_ms=800)
    high, low = WriterAgent(settings, MemoryStore(), "high"), WriterAgent(settings, MemoryStore(), "low")
    assert (high.max_records, high.fetch_wait_ms) == (7, 11)
    assert (low.max_records, low.fetch_wait_ms) == (900, 800)
    defaults = Settings()
    assert defaults.low_batch_max_records >= defaults.batch_max_records
    assert defaults.low_batch_max_wait_ms >= defaults.batch_max_wait_ms


@pytest.mark.parametrize(("low_max_in_flight", "role", "priority", "want"), [
    (8, "writer", "low", 8), (8, "writer", "high", 128), (0, "writer", "low", 128), (8, "planner", None, 128),
])
async def test_only_a_low_writer_opens_its_store_with_low_max_in_flight(
    monkeypatch: pytest.MonkeyPatch, low_max_in_flight: int, role: str, priority: str | None, want: int
) -> None:
    seen: list[int] = []

    async def opened(settings: Settings, **_: Any) -> Store:
        seen.append(settings.max_in_flight)
        raise RuntimeError("no server needed: the store's settings are what is checked")

    monkeypatch.setattr(worker, "open_store", opened)
    settings = Settings(max_in_flight=128, low_max_in_flight=low_max_in_flight)
    with pytest.raises(RuntimeError, match="no server needed"):
        await worker.run_worker(role, settings, priority=priority, signals=False)
    assert seen == [want]


def test_low_max_in_flight_is_a_validated_setting() -> None:
    assert Settings().low_max_in_flight >= 0
    assert Settings.from_env({"FANOUT_LOW_MAX_IN_FLIGHT": "16"}).low_max_in_flight == 16
    with pytest.raises(ConfigError, match="FANOUT_LOW_MAX_IN_FLIGHT"):
        Settings.from_env({"FANOUT_LOW_MAX_IN_FLIGHT": "-1"})


def test_an_agents_consumer_waits_at_the_broker_no_longer_than_its_batch_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """aiokafka keeps one fetch in flight per broker, held up to ``fetch_max_wait_ms`` (500 ms by
    default) while its partitions have no data: a partition resumed after its batch waited for
    that long poll before its next records were fetched. The broker's wait is the batch wait."""
    built: dict[str, dict[str, Any]] = {}

    def consumer(self: Any, client_id: str, *topics: str, **options: Any) -> None:
        built[client_id] = options

    monkeypatch.setattr(KafkaClients, "consumer", consumer)
    settings = Settings(batch_max_wait_ms=11, low_batch_max_wait_ms=800)
    WriterAgent(settings, MemoryStore(), "high")._build_consumer()
    WriterAgent(settings, MemoryStore(), "low")._build_consumer()
    PlannerAgent(settings, MemoryStore())._build_consumer()
    assert {name: options["fetch_max_wait_ms"] for name, options in built.items()} == {
        "fanout-writer-high": 11, "fanout-writer-low": 500, "fanout-planner": 11}  # at most aiokafka's default
    WriterAgent(Settings(batch_max_wait_ms=0), MemoryStore(), "high")._build_consumer()
    assert built["fanout-writer-high"]["fetch_max_wait_ms"] == 10  # not 0: no spinning on empty fetches


@pytest.mark.parametrize(("role", "priority", "low_nice", "want"), [
    ("writer", "low", 10, [10]), ("writer", "low", 3, [3]), ("writer", "low", 0, []),
    ("writer", "high", 10, []), ("planner", None, 10, []), ("follows", None, 10, []),
])
def test_only_a_low_writer_process_yields_the_cpu(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, role: str, priority: str | None, low_nice: int, want: list[int]
) -> None:
    calls: list[int] = []

    def nice(increment: int) -> int:
        calls.append(increment)
        return 7

    monkeypatch.setattr(os, "nice", nice)
    monkeypatch.setattr(os, "getsid", lambda pid: os.getpid())  # a session leader, as each child of `worker all`
    monkeypatch.setattr(worker, "AUTOGROUP", tmp_path / "autogroup")
    yielded = worker.yield_cpu(role, priority, Settings(low_nice=low_nice))
    assert calls == want
    assert yielded == (worker.Yielded(7, True) if want else None)
    written = (tmp_path / "autogroup").read_text() if want else None
    assert written == (f"{want[0]}\n" if want else None)


def test_a_low_writer_in_a_shared_session_leaves_the_sessions_autogroup_alone(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(os, "nice", lambda increment: 10)
    monkeypatch.setattr(os, "getsid", lambda pid: os.getpid() + 1)  # started from a shell: not its session
    monkeypatch.setattr(worker, "AUTOGROUP", tmp_path / "autogroup")
    assert worker.yield_cpu("writer", "low", Settings()) == worker.Yielded(10, False)
    assert not (tmp_path / "autogroup").exists()
    monkeypatch.setattr(os, "getsid", lambda pid: os.getpid())
    monkeypatch.setattr(worker, "AUTOGROUP", tmp_path)  # a directory: the write fails, the niceness stays
    assert worker.yield_cpu("writer", "low", Settings()) == worker.Yielded(10, False)


def test_low_nice_is_a_validated_setting() -> None:
    assert Settings().low_nice == 10
    assert Settings.from_env({"FANOUT_LOW_NICE": "0"}).low_nice == 0
    for bad in ("-1", "20"):
        with pytest.raises(ConfigError, match="FANOUT_LOW_NICE must be within 0-19"):
            Settings.from_env({"FANOUT_LOW_NICE": bad})


@pytest.mark.parametrize("own_session", [False, True])
@pytest.mark.parametrize("priority", ["low", "high"])
def test_a_low_writer_process_runs_at_a_higher_niceness(priority: str, own_session: bool) -> None:
    """The real CLI in its own process (the node unreachable: it exits after saying so): a LOW
    writer raises its niceness before it opens the store and says so, and, leading its own
    session as each child of `worker all` does, its session's autogroup nice (where the kernel
    has autogroups); a HIGH writer does neither."""
    env = {"FANOUT_CASSANDRA_PORT": "1", "FANOUT_LOW_NICE": "5", "PATH": "/usr/bin:/bin"}  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "fanout", "worker", "writer", "--priority", priority,
                           "--log-level", "INFO"], capture_output=True, text=True, env=env, timeout=60,
                          start_new_session=own_session)
    assert done.returncode == EXIT_UNAVAILABLE and "Cassandra not reachable" in done.stderr, done.stderr
    said = [line for line in done.stderr.splitlines() if "FANOUT_LOW_NICE=5" in line]
    if priority == "high":
        assert said == []
        return
    assert len(said) == 1 and f"niceness {min(os.nice(0) + 5, 19)}" in said[0], done.stderr
    autogroups = own_session and worker.AUTOGROUP.exists()
    assert ("its session's autogroup too" in said[0]) == autogroups, said[0]
