"""Processes of a run: their environment, stopping them, their CPU, the services they need."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import time
from collections.abc import Callable, Mapping

from .context import ROOT


def child_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment plus ``extra``, with the project root first on ``PYTHONPATH``
    (so that ``python -m benchmarks...`` and ``python -m fanout`` import this checkout)."""
    env = {**os.environ, **(extra or {})}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def wait_or_kill(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Wait ``timeout`` seconds for ``proc`` to exit, then kill it."""
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def stop_process(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """SIGTERM, then SIGKILL after ``timeout`` seconds (nothing when it already exited)."""
    if proc.poll() is None:
        proc.terminate()
        wait_or_kill(proc, timeout)


def wait_ready(proc: subprocess.Popen[bytes], ready: Callable[[], bool], *, timeout: float, interval: float) -> bool:
    """Poll ``ready()`` until it holds (True), or ``proc`` exits or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return True
        if proc.poll() is not None:
            return False
        time.sleep(interval)
    return False


def reachable(host: str, port: int, timeout: float = 3) -> bool:
    """Does something accept TCP connections on ``host:port``?"""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds of a process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid or os.getpid()}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def service_pids() -> dict[str, int]:
    """Pids of the local Kafka and Cassandra nodes that run (``scripts/services.sh`` writes them):
    ``cassandra`` and ``kafka`` on the one-node stack, ``cassandra-1`` ... ``kafka-3`` on the cluster."""
    out = {}
    for name in ("cassandra", "kafka", *(f"{kind}-{n}" for kind in ("cassandra", "kafka") for n in (1, 2, 3))):
        with contextlib.suppress(OSError, ValueError):
            pid = int((ROOT / ".local" / name / "pid").read_text().split()[0])
            os.kill(pid, 0)
            out[name] = pid
    return out
