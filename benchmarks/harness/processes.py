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


def listening_pid(port: int) -> int | None:
    """The pid of the process listening on TCP ``port`` in this network namespace (root sees every
    process; None when nobody listens or the owner is not visible)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError), open(table, encoding="ascii") as fh:
            for line in list(fh)[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                    inodes.add(f"socket:[{fields[9]}]")
    if not inodes:
        return None
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") in inodes:
                        return pid
    return None


def service_pids(cassandra_port: int = 9042, kafka_port: int = 9092) -> dict[str, int]:
    """Pids of the Cassandra node and the Kafka broker this bench talks to, found by the port they
    listen on (whichever checkout started them), plus this checkout's cluster nodes (``cassandra-1``
    ... ``kafka-3``, from the pid files ``scripts/services.sh`` writes) when they run."""
    out = {}
    for name, port in (("cassandra", cassandra_port), ("kafka", kafka_port)):
        pid = listening_pid(port)
        if pid is not None:
            out[name] = pid
    for name in (f"{kind}-{n}" for kind in ("cassandra", "kafka") for n in (1, 2, 3)):  # make up's cluster nodes
        with contextlib.suppress(OSError, ValueError):
            pid = int((ROOT / ".local" / name / "pid").read_text().split()[0])
            os.kill(pid, 0)
            out[name] = pid
    return out
