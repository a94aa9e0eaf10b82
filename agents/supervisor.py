"""``fanout worker all``: every agent as its own subprocess, for a single machine, kept running.

Starts N planners (default 1), N high writers (3), N low writers (1) and N follows agents (1) as
``python -m fanout worker <role> --parent-pid <supervisor>`` with the supervisor's settings
exported as ``FANOUT_*`` variables. The children run in their own sessions, so a terminal Ctrl+C
reaches only the supervisor, which forwards it once (SIGTERM) to every child; each finishes its
batches and exits.

A child that dies on its own is restarted after a backoff (1 s doubling to 30 s). A child that ran
for ``stable_after_s`` (60 s) before it died starts a fresh count; one that dies ``max_restarts + 1``
times in a row (a crash loop: a bad setting, a refused start) stops every agent, with an error line
saying so, and ``worker all`` exits with that child's code, so an outer supervisor (systemd,
Kubernetes) sees the failure. An exit with ``EXIT_UNAVAILABLE`` (Kafka or Cassandra not reachable
or timing out: an outage) is not counted: such a child is restarted, every 30 s at most, until
the servers answer again, however long the outage lasts, with one line of the supervisor's when
the outage begins and one every ``OUTAGE_LOG_EVERY_S`` after (each failed start still prints the
child's own line). Both servers are checked at the start, so that a setting that can never work
(a host name, credentials) stops ``worker all`` there.

The children never outlive the supervisor, even when it is SIGKILLed: each asks the Linux kernel
for SIGHUP when its parent dies (``prctl(PR_SET_PDEATHSIG)``) and, on any system, watches its
parent pid once a second (``watch_parent``); either way it stops as on SIGTERM (its batches in
progress get their grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from dataclasses import dataclass, fields

from fanout.errors import EXIT_UNAVAILABLE
from fanout.settings import Settings

from .stores import open_store
from .topics import check_topics

log = logging.getLogger("fanout.agents")

_PR_SET_PDEATHSIG = 1
#: What a child of ``worker all`` receives when the supervisor dies: its own signal (the children
#: run in their own sessions, so no terminal sends it), handled as one graceful stop.
PARENT_DEATH_SIGNAL = signal.SIGHUP
FIRST_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
OUTAGE_LOG_EVERY_S = 300.0  # a child restarted through an outage: one line when it begins, then this often


def settings_env(settings: Settings) -> dict[str, str]:
    """``FANOUT_*`` variables that make a child's ``Settings.from_env()`` equal ``settings``."""
    env: dict[str, str] = {}
    for f in fields(settings):
        value = getattr(settings, f.name)
        if isinstance(value, bool):
            text = "1" if value else "0"
        elif isinstance(value, tuple):
            text = ",".join(str(v) for v in value)
        else:
            text = str(value)
        env[f"FANOUT_{f.name.upper()}"] = text
    return env


def worker_command(role: str, *args: str) -> list[str]:
    """``[python, -m, fanout, worker, role, *args]``."""
    return [sys.executable, "-m", "fanout", "worker", role, *args]


def child_specs(
    high_writers: int, low_writers: int, planners: int = 1, follows: int = 1
) -> list[tuple[str, list[str]]]:
    specs: list[tuple[str, list[str]]] = [("planner", [])] * planners
    specs += [("writer", ["--priority", "high"])] * high_writers
    specs += [("writer", ["--priority", "low"])] * low_writers
    specs += [("follows", [])] * follows
    return specs


def exit_code(returncode: int) -> int:
    """A shell's exit code for a child's return code (killed by signal N: 128 + N)."""
    return returncode if returncode > 0 else (128 - returncode if returncode < 0 else 1)


# the child's side ------------------------------------------------------------------------
def die_with_parent(parent_pid: int) -> bool:
    """Ask for ``PARENT_DEATH_SIGNAL`` when the parent dies (Linux); False when the parent is
    already gone."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, PARENT_DEATH_SIGNAL, 0, 0, 0)
    return os.getppid() == parent_pid  # it may have died before the prctl: then stop at once


async def watch_parent(parent_pid: int, stop: asyncio.Event, every: float = 1.0) -> None:
    """Until ``stop``: set it once the parent is gone (its death signal arrived, or the child was
    re-parented), so the agent stops as on SIGTERM: its batches in progress finish first."""
    gone = asyncio.Event()
    loop = asyncio.get_running_loop()
    handled = False
    with contextlib.suppress(ValueError, RuntimeError, NotImplementedError):  # not the main thread
        loop.add_signal_handler(PARENT_DEATH_SIGNAL, gone.set)
        handled = True
    try:
        while not stop.is_set():
            if gone.is_set() or os.getppid() != parent_pid:
                log.warning("the supervisor (pid %d) is gone: stopping", parent_pid)
                stop.set()
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), timeout=every)
    finally:
        if handled:
            loop.remove_signal_handler(PARENT_DEATH_SIGNAL)


# the supervisor's side -------------------------------------------------------------------
@dataclass
class _Child:
    name: str
    command: list[str]
    proc: asyncio.subprocess.Process | None = None
    started: float = 0.0
    failures: int = 0  # deaths in a row, each after less than stable_after_s (they set the backoff)
    crashes: int = 0  # those of them not for an outage (EXIT_UNAVAILABLE): a crash loop past max_restarts
    outage_logged: float = float("-inf")  # when its last outage line was written


class _Supervisor:
    def __init__(self, env: dict[str, str], stop: asyncio.Event, *, max_restarts: int, stable_after_s: float,
                 first_backoff_s: float) -> None:
        self.env = env
        self.stop = stop
        self.max_restarts = max_restarts
        self.stable_after_s = stable_after_s
        self.first_backoff_s = first_backoff_s

    async def start(self, child: _Child) -> asyncio.subprocess.Process:
        proc = await asyncio.create_subprocess_exec(*child.command, env=self.env, start_new_session=True)
        child.proc, child.started = proc, time.monotonic()
        quiet = child.outage_logged > float("-inf")  # restarted through an outage: its lines are throttled
        log.log(logging.DEBUG if quiet else logging.INFO, "started %s (pid %d)", child.name, proc.pid)
        return proc

    async def keep(self, child: _Child) -> int:
        """Run ``child`` until ``stop``; restart it when it dies; return its exit code once it
        died ``max_restarts + 1`` times in a row (0 when stopped)."""
        while not self.stop.is_set():
            proc = child.proc or await self.start(child)
            returncode = await proc.wait()
            if self.stop.is_set():
                return 0
            ran = time.monotonic() - child.started
            code = exit_code(returncode)
            outage = code == EXIT_UNAVAILABLE
            if ran >= self.stable_after_s or not outage:
                child.outage_logged = float("-inf")
            if ran >= self.stable_after_s:
                child.failures = child.crashes = 0
            child.failures += 1
            child.crashes += not outage
            child.proc = None
            if child.crashes > self.max_restarts:
                log.error("%s failed %d times in a row (last exit code %d, after %.0f s): giving up, stopping "
                          "every agent", child.name, child.crashes, code, ran)
                return code
            delay = min(self.first_backoff_s * 2 ** min(child.failures - 1, 20), MAX_BACKOFF_S)  # hours of outage
            if outage:
                now = time.monotonic()
                if now - child.outage_logged >= OUTAGE_LOG_EVERY_S:
                    child.outage_logged = now
                    log.error("%s exited for a server that is not reachable (code %d, %d time(s) in a row): "
                              "restarting it every %.0f s at most until the servers answer (next line in %.0f "
                              "min)", child.name, code, child.failures, MAX_BACKOFF_S, OUTAGE_LOG_EVERY_S / 60)
            else:
                log.error("%s exited on its own (code %d, after %.0f s): restarting it in %.0f s (restart %d of "
                          "%d in a row)", child.name, code, ran, delay, child.crashes, self.max_restarts)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop.wait(), timeout=delay)
        return 0


async def supervise(
    settings: Settings,
    *,
    stop: asyncio.Event,
    planners: int = 1,
    high_writers: int = 3,
    low_writers: int = 1,
    follows: int = 1,
    metrics_port: int | None = None,
    stop_timeout: float = 15.0,
    start_from: str | None = None,
    max_restarts: int = 5,
    stable_after_s: float = 60.0,
    first_backoff_s: float = FIRST_BACKOFF_S,
) -> int:
    """Run the agents as subprocesses until ``stop`` is set or one crash-loops; return an exit code."""
    await check_topics(settings)
    await _check_cassandra(settings)
    env = {**os.environ, **settings_env(settings)}
    children: list[_Child] = []
    for i, (role, args) in enumerate(child_specs(high_writers, low_writers, planners, follows)):
        extra = [*args, "--parent-pid", str(os.getpid())]
        if start_from:
            extra += ["--from", start_from]
        if metrics_port:
            extra += ["--metrics-port", str(metrics_port + i)]
        children.append(_Child(f"{role}{'-' + args[1] if args else ''}#{i}", worker_command(role, *extra)))
    boss = _Supervisor(env, stop, max_restarts=max_restarts, stable_after_s=stable_after_s,
                       first_backoff_s=first_backoff_s)
    keepers = [asyncio.ensure_future(boss.keep(child)) for child in children]
    stopper = asyncio.ensure_future(stop.wait())
    code = 0
    try:
        done, _ = await asyncio.wait([*keepers, stopper], return_when=asyncio.FIRST_COMPLETED)
        for fut in done:
            if fut is not stopper:
                code = code or fut.result()
    finally:
        stopper.cancel()
        for keeper in keepers:
            keeper.cancel()
        await asyncio.gather(*keepers, return_exceptions=True)
        worst = await _stop_all(children, stop_timeout)
    return code or worst


async def _check_cassandra(settings: Settings) -> None:
    """Connect once: a node not reachable, or a setting it refuses, stops ``worker all`` at its start."""
    store = await open_store(settings)  # as the agents open it: the driver's warnings on one line
    await store.close()


async def _stop_all(children: list[_Child], wait_s: float) -> int:
    """SIGTERM every running child, wait up to ``wait_s``, SIGKILL the rest; worst exit code."""
    running = [(c.name, c.proc) for c in children if c.proc is not None]
    for _, proc in running:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    worst = 0
    deadline = asyncio.get_running_loop().time() + wait_s
    for name, proc in running:
        try:
            remaining = max(0.1, deadline - asyncio.get_running_loop().time())
            code = await asyncio.wait_for(proc.wait(), timeout=remaining)
        except TimeoutError:
            log.error("%s did not stop within %.0fs: killing it", name, wait_s)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        if code not in (0, -signal.SIGTERM):
            worst = worst or exit_code(code)
    return worst
