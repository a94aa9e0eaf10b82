"""The broker and node a run measures: whose they are, and starting them fresh when they are the run's own.

``--fresh-stack`` makes every case start on a freshly started broker and node: before each case
``scripts/services.sh`` of this checkout stops both, removes their data and starts them again
(``clean-data``, ``up``). That wipes every topic and keyspace, so it runs only on a stack this
checkout owns: nothing listens on the ports yet (the run starts the servers itself), or the
processes listening are exactly the pids recorded in this checkout's ``.local/<service>/pid``
(``make up`` run here, as ``make bench`` does on a fresh machine). Servers started from another
checkout (shared with other people's tests) are refused, loudly, before anything is stopped.

Before every case, with or without it, the run also waits for the node to settle
(``wait_for_quiet_node``): a case that loaded a million rows leaves the node compacting for a minute
or more, and the next case would measure that.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from fanout import Settings

from .context import ROOT
from .processes import cpu_seconds, listening_pid

SERVICES = {"kafka": ("127.0.0.1", 9092), "cassandra": ("127.0.0.1", 9042)}  # scripts/services.sh's fixed ports


class StackRefused(RuntimeError):
    """The running broker or node is not this checkout's: a fresh stack would wipe someone else's data."""


def recorded_pid(root: Path, service: str) -> int | None:
    """The pid ``scripts/services.sh`` of checkout ``root`` recorded for ``service`` (None when none)."""
    try:
        return int((root / ".local" / service / "pid").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def pid_file_pids(roots: list[Path]) -> dict[str, int]:
    """Pids of the running services found through the pid files of the checkouts ``roots`` (the first
    alive one per service): a fallback when the listening socket's owner is not visible."""
    out: dict[str, int] = {}
    for service in SERVICES:
        for root in roots:
            pid = recorded_pid(root, service)
            if pid is not None and Path(f"/proc/{pid}").exists():
                out[service] = pid
                break
    return out


def worktrees() -> list[Path]:
    """This checkout and every other worktree of its repository (``git worktree list``)."""
    try:
        out = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return [ROOT]
    others = [Path(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("worktree ")]
    return [ROOT, *(p for p in others if p.resolve() != ROOT.resolve())]


@dataclass
class FreshStack:
    """This checkout's broker and node, restarted on empty data before each case."""

    root: Path = ROOT
    restarts: int = 0
    log: list[str] = field(default_factory=list)

    def check_owned(self, bootstrap: str, cassandra: tuple[str, int]) -> str:
        """Why this run may wipe and restart the stack (raises ``StackRefused`` when it may not)."""
        wanted = {"kafka": bootstrap, "cassandra": f"{cassandra[0]}:{cassandra[1]}"}
        for service, (host, port) in SERVICES.items():
            if wanted[service] not in (f"{host}:{port}", f"localhost:{port}"):
                raise StackRefused(f"--fresh-stack runs scripts/services.sh, whose {service} listens on "
                                   f"{host}:{port}; the settings point at {wanted[service]}")
        listening = {service: listening_pid(port) for service, (_, port) in SERVICES.items()}
        foreign = {s: pid for s, pid in listening.items() if pid is not None and pid != recorded_pid(self.root, s)}
        if foreign:
            owners = ", ".join(f"{s} pid {pid} ({_started_from(pid)})" for s, pid in foreign.items())
            raise StackRefused(f"--fresh-stack refused: the running {owners}: not this checkout's ({self.root}); "
                               "restarting it would wipe other people's topics and keyspaces. Run without "
                               "--fresh-stack on a shared stack, or run `make bench` in the checkout that owns it.")
        running = [s for s, pid in listening.items() if pid is not None]
        return (f"this checkout's stack ({', '.join(running)} started here by make up)" if running
                else "no broker or node was running: this run starts its own")

    def restart(self) -> str:
        """Stop both servers, remove their data, start them again; the launcher's output."""
        out = self._services("clean-data") + self._services("up", "all")
        self.restarts += 1
        return out

    def restart_node(self, service: str, config: Mapping[str, str]) -> str:
        """Stop ``service`` and start it again (its data kept) with the server config ``config``
        (``FANOUT_CASSANDRA_*`` variables of ``scripts/services.sh``); the launcher's output."""
        out = self._services("down", service) + self._services("up", service, config=config)
        self.restarts += 1
        return out

    def pids(self) -> dict[str, int]:
        return {s: pid for s in SERVICES if (pid := recorded_pid(self.root, s)) is not None}

    def _services(self, *args: str, config: Mapping[str, str] | None = None) -> str:
        script = self.root / "scripts" / "services.sh"
        env = {**os.environ, "FANOUT_SERVICES_TIMEOUT": os.environ.get("FANOUT_SERVICES_TIMEOUT", "600"),
               **(config or {})}
        done = subprocess.run(["bash", str(script), *args], cwd=self.root, env=env, capture_output=True,
                              text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"scripts/services.sh {' '.join(args)} failed (exit {done.returncode}):\n"
                               f"{done.stdout}{done.stderr}")
        return done.stdout


def _started_from(pid: int) -> str:
    """Which checkout's ``.local`` a server's command line names (best effort)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return "owner not visible"
    for part in cmdline.split():
        if "/.local/" in part:
            return "started from " + part.split("/.local/", 1)[0].split("=")[-1].split(":")[-1]
    return "started elsewhere"


async def wait_for_coordinator(settings: Settings, within: float = 120.0) -> float:
    """Wait until the broker answers a group-coordinator lookup, as the agents do (a fresh cluster
    answers GroupCoordinatorNotAvailable until its ``__consumer_offsets`` topic exists); seconds
    waited. Raises after ``within`` seconds: a case that needs the broker then fails, loudly."""
    from fanout.agents.topics import committed_offsets
    from fanout.kafka import KafkaClients

    started = time.monotonic()
    async with KafkaClients(settings).admin() as admin:
        try:
            await committed_offsets(admin, f"{settings.topic_prefix}bench-coordinator-probe", [], within=within)
        except Exception as exc:
            raise RuntimeError(f"no group coordinator after {time.monotonic() - started:.0f}s: "
                               f"{type(exc).__name__}: {exc}") from exc
    return time.monotonic() - started


QUIET_CORES = 0.3  # a node burning less than this with no bench load has settled (its idle rate: 0.04-0.1)


async def wait_for_quiet_node(pid: int | None, *, below: float = QUIET_CORES, within: float = 180.0,
                              window: float = 2.0) -> tuple[float, float]:
    """Wait until the node's own work (compactions and flushes the previous case left behind)
    burns less than ``below`` cores over ``window`` seconds; returns (seconds waited, the last
    rate). Gives up after ``within`` seconds: the case then runs on a busy node, and says so."""
    if not pid:
        return 0.0, 0.0
    started = time.monotonic()
    while True:
        before = cpu_seconds(pid)
        await asyncio.sleep(window)
        rate = (cpu_seconds(pid) - before) / window
        waited = time.monotonic() - started
        if rate < below or waited >= within:
            return waited, rate
