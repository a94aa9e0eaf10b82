"""``fanout worker all``: every agent as its own subprocess, for a single machine.

Starts ``planner``, N high writers (default 3), M low writers (default 1) and ``follows`` as
``python -m fanout worker <role>`` with the supervisor's settings exported as ``FANOUT_*``
variables. The children run in their own sessions, so a terminal Ctrl+C reaches only the
supervisor, which forwards it once (SIGTERM) to every child; each finishes its batch and exits.
Nothing is restarted: when a child dies on its own the supervisor stops the others and exits
with that child's code, so an outer supervisor (systemd, Kubernetes) sees the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from dataclasses import fields

from fanout.settings import Settings

from .topics import check_topics

log = logging.getLogger("fanout.agents")


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


def child_specs(high_writers: int, low_writers: int) -> list[tuple[str, list[str]]]:
    specs: list[tuple[str, list[str]]] = [("planner", [])]
    specs += [("writer", ["--priority", "high"])] * high_writers
    specs += [("writer", ["--priority", "low"])] * low_writers
    specs.append(("follows", []))
    return specs


async def supervise(
    settings: Settings,
    *,
    stop: asyncio.Event,
    high_writers: int = 3,
    low_writers: int = 1,
    metrics_port: int | None = None,
    stop_timeout: float = 15.0,
    start_from: str | None = None,
) -> int:
    """Run the agents as subprocesses until ``stop`` is set or one exits; return an exit code."""
    await check_topics(settings)
    env = {**os.environ, **settings_env(settings)}
    children: list[tuple[str, asyncio.subprocess.Process]] = []
    try:
        for i, (role, args) in enumerate(child_specs(high_writers, low_writers)):
            extra = list(args)
            if start_from:
                extra += ["--from", start_from]
            if metrics_port:
                extra += ["--metrics-port", str(metrics_port + i)]
            proc = await asyncio.create_subprocess_exec(
                *worker_command(role, *extra), env=env, start_new_session=True
            )
            name = f"{role}{'-' + args[1] if args else ''}#{i}"
            log.info("started %s (pid %d)", name, proc.pid)
            children.append((name, proc))

        waits = {asyncio.ensure_future(proc.wait()): name for name, proc in children}
        stopper = asyncio.ensure_future(stop.wait())
        done, _ = await asyncio.wait([*waits, stopper], return_when=asyncio.FIRST_COMPLETED)
        stopper.cancel()
        code = 0
        for fut in done:
            if fut in waits:
                returncode = fut.result()
                code = returncode if returncode > 0 else (128 - returncode if returncode < 0 else 1)
                log.error("%s exited on its own (code %s): stopping the others", waits[fut], returncode)
        for fut in waits:
            fut.cancel()
        return await _stop_all(children, stop_timeout) or code
    except BaseException:
        await _stop_all(children, stop_timeout)
        raise


async def _stop_all(children: list[tuple[str, asyncio.subprocess.Process]], wait_s: float) -> int:
    """SIGTERM every running child, wait up to ``wait_s``, SIGKILL the rest; worst exit code."""
    for _, proc in children:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    worst = 0
    deadline = asyncio.get_running_loop().time() + wait_s
    for name, proc in children:
        try:
            remaining = max(0.1, deadline - asyncio.get_running_loop().time())
            code = await asyncio.wait_for(proc.wait(), timeout=remaining)
        except TimeoutError:
            log.error("%s did not stop within %.0fs: killing it", name, wait_s)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            code = await proc.wait()
        if code not in (0, -signal.SIGTERM):
            worst = worst or (code if code > 0 else 128 - code)
    return worst
