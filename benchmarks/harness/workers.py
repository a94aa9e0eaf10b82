"""The pipeline's worker processes: ``python -m fanout worker planner`` and the writers, started
as subprocesses of the bench and stopped by pid."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Sequence

from fanout import Settings

from .context import ROOT, Context
from .errors import PipelineUnavailable
from .processes import child_env, cpu_seconds, service_pids, stop_process, wait_or_kill

Role = tuple[str, list[str]]  # (worker role, its arguments)


class Workers:
    """One planner, ``ctx.high_writers`` high and ``ctx.low_writers`` low writers, one process each;
    their logs (and with ``--profile-workers`` their cProfile files) go to ``<work>/workers``."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []  # (name, process)

    def roles(self) -> list[Role]:
        roles: list[Role] = [("planner", [])]
        roles += [("writer", ["--priority", "high"])] * self.ctx.high_writers
        roles += [("writer", ["--priority", "low"])] * self.ctx.low_writers
        return roles

    def spawn(self, settings: Settings, roles: Sequence[Role]) -> None:
        from fanout.agents.supervisor import settings_env

        env = child_env(settings_env(settings))
        logs = self.ctx.work / "workers"
        logs.mkdir(exist_ok=True)
        for role, args in roles:
            name = f"{role}{'-' + args[1] if args else ''}-{len(self.procs)}"
            log = (logs / f"{settings.topic_prefix}{name}.log").open("ab")
            profile = ["-m", "cProfile", "-o", str(logs / f"{settings.topic_prefix}{name}.prof")]
            proc = subprocess.Popen(
                [sys.executable, *(profile if self.ctx.profile_workers else []), "-m", "fanout", "worker", role,
                 *args, "--log-level", "INFO"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            self.procs.append((name, proc))

    async def stop_planner(self) -> None:
        """Stop the planner alone (SIGTERM, SIGKILL after 30 s); the writers go on."""
        index = next(i for i, (name, _) in enumerate(self.procs) if name.startswith("planner"))
        _, old = self.procs.pop(index)
        await asyncio.to_thread(stop_process, old, 30)

    @property
    def planner_pid(self) -> int:
        return next(proc.pid for name, proc in self.procs if name.startswith("planner"))

    def check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise PipelineUnavailable(f"worker {name} exited with code {proc.returncode}; "
                                          f"logs in {self.ctx.work}/workers")

    def stop(self) -> None:
        """SIGTERM to every worker at once, SIGKILL to those still running 20 s later."""
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        deadline = time.monotonic() + 20
        for _, proc in self.procs:
            wait_or_kill(proc, max(0.1, deadline - time.monotonic()))

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every process involved, by role (writers of a priority summed),
        Kafka's, Cassandra's and the bench's own."""
        out: dict[str, float] = {}
        for name, proc in self.procs:
            role = name.rsplit("-", 1)[0]
            out[role] = out.get(role, 0.0) + cpu_seconds(proc.pid)
        for name, pid in (self.ctx.service_pids or service_pids()).items():  # run.py sets them per case
            out[name] = cpu_seconds(pid)
        out["bench"] = cpu_seconds()
        return out
