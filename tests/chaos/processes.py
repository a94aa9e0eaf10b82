"""Agents as real processes: ``python -m fanout worker ROLE ...``, killed and restarted by pid.

Each ``AgentProcess`` keeps one log file per generation (start) under the run's log directory.
A ``Fleet`` watches its agents: an exit the suite did not cause is a *crash*; it is recorded with
the log's last lines and, like a supervisor would, the agent is restarted with backoff (up to a
bound), so one poison record shows up as a crash count instead of a silent stall.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MAX_CRASH_RESTARTS = 5


@functools.cache
def start_flags() -> tuple[str, ...]:
    """``--from earliest`` when this build's workers take it (agents refusing to start on a fresh
    group over a non-empty topic): the suite's groups are always new and read from the start."""
    out = subprocess.run([sys.executable, "-m", "fanout", "worker", "--help"], capture_output=True, text=True,
                         cwd=ROOT, check=False).stdout
    return ("--from", "earliest") if "--from" in out else ()


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state != "Z"


def children_of(pid: int) -> list[int]:
    """The pids whose parent is ``pid`` (read from /proc, by pid)."""
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except (FileNotFoundError, ProcessLookupError):
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            out.append(int(entry))
    return sorted(out)


def cmdline(pid: int) -> list[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [p.decode(errors="replace") for p in f.read().split(b"\0") if p]
    except (FileNotFoundError, ProcessLookupError):
        return []


def count_lines(path: Path) -> int:
    try:
        with open(path, "rb") as f:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
    except FileNotFoundError:
        return 0


@dataclass
class Generation:
    proc: subprocess.Popen[bytes]
    log: Path
    started: float
    signalled: int = 0  # the signal the suite sent (0: none, so an exit is a crash)


@dataclass
class AgentProcess:
    """One agent (``role`` + ``args``), restarted as new generations."""

    name: str
    role: str
    args: tuple[str, ...]
    env: dict[str, str]
    log_dir: Path
    generations: list[Generation] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)
    kills: int = 0
    retired: bool = False  # stopped for good by the suite: never restarted

    @property
    def command(self) -> list[str]:
        return [sys.executable, "-m", "fanout", "worker", self.role, *self.args]

    def start(self) -> None:
        path = self.log_dir / f"{self.name}.{len(self.generations)}.log"
        with open(path, "wb") as log:
            proc = subprocess.Popen(self.command, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
                                    start_new_session=True)
        self.generations.append(Generation(proc, path, time.monotonic()))

    @property
    def current(self) -> Generation:
        return self.generations[-1]

    @property
    def pid(self) -> int:
        return self.current.proc.pid

    def running(self) -> bool:
        return bool(self.generations) and self.current.proc.poll() is None

    async def kill(self, sig: int = signal.SIGKILL, *, within: float = 30.0) -> int | None:
        """Send ``sig`` to the current generation (by pid) and wait for it to exit; its exit code."""
        gen = self.current
        if gen.proc.poll() is not None:
            return gen.proc.returncode
        gen.signalled = sig
        if sig == signal.SIGKILL:
            self.kills += 1
        with contextlib.suppress(ProcessLookupError):
            os.kill(gen.proc.pid, sig)
        try:
            return await asyncio.wait_for(asyncio.to_thread(gen.proc.wait), within)
        except TimeoutError:
            os.kill(gen.proc.pid, signal.SIGKILL)
            await asyncio.to_thread(gen.proc.wait)
            return None

    def check(self) -> bool:
        """Record an exit the suite did not cause; True when the agent crashed just now."""
        if not self.generations or self.retired:
            return False
        gen = self.current
        code = gen.proc.poll()
        if code is None or gen.signalled:
            return False
        gen.signalled = -1  # counted once
        self.crashes.append(f"{self.name} (pid {gen.proc.pid}) exited with {code} after "
                            f"{time.monotonic() - gen.started:.1f}s:\n{self.tail(15)}")
        return True

    def lines(self) -> int:
        """Log lines of every generation so far."""
        return sum(count_lines(g.log) for g in self.generations)

    def tail(self, n: int = 20) -> str:
        if not self.generations:
            return ""
        text = self.current.log.read_text(errors="replace").splitlines()
        return "\n".join("    " + line for line in text[-n:])


class Fleet:
    """The agents of one scenario, each its own process; a watcher restarts crashed ones."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, restart_crashed: bool = True,
                 max_restarts: int = MAX_CRASH_RESTARTS) -> None:
        self.env = env
        self.log_dir = log_dir
        self.max_restarts = max_restarts
        self.agents: dict[str, AgentProcess] = {}
        self.restart_crashed = restart_crashed
        self._watcher: asyncio.Task[None] | None = None
        self._restarts: set[asyncio.Task[None]] = set()

    def add(self, name: str, role: str, *args: str) -> AgentProcess:
        agent = AgentProcess(name, role, (*args, *start_flags()), self.env, self.log_dir)
        self.agents[name] = agent
        agent.start()
        if self._watcher is None:
            self._watcher = asyncio.ensure_future(self._watch())
        return agent

    def role(self, role: str) -> list[AgentProcess]:
        """The agents of a role label: planner, writer-high, writer-low, follows."""
        return [a for a in self.agents.values() if label(a) == role and not a.retired]

    @property
    def crashes(self) -> list[str]:
        return [c for a in self.agents.values() for c in a.crashes]

    def kills(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for agent in self.agents.values():
            out[label(agent)] = out.get(label(agent), 0) + agent.kills
        return out

    def lines(self) -> dict[str, int]:
        return {name: agent.lines() for name, agent in self.agents.items()}

    async def _watch(self) -> None:
        while True:
            for agent in list(self.agents.values()):
                if agent.check() and self.restart_crashed and len(agent.crashes) <= self.max_restarts:
                    task = asyncio.ensure_future(self.restart(agent, min(5.0, 0.5 * 2 ** len(agent.crashes))))
                    self._restarts.add(task)
                    task.add_done_callback(self._restarts.discard)
            await asyncio.sleep(0.3)

    async def restart(self, agent: AgentProcess, delay: float = 0.0) -> None:
        if delay:
            await asyncio.sleep(delay)
        if not agent.retired and not agent.running():
            agent.start()

    async def close(self) -> None:
        """SIGTERM every running agent (SIGKILL after 20 s); stop watching."""
        for task in (self._watcher, *self._restarts):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        for agent in self.agents.values():
            agent.retired = True
        await asyncio.gather(*(a.kill(signal.SIGTERM, within=20) for a in self.agents.values() if a.running()))


def label(agent: AgentProcess) -> str:
    if agent.role == "writer":
        return f"writer-{agent.args[agent.args.index('--priority') + 1]}"
    return agent.role
