"""Restarting the broker and the Cassandra node that *this checkout* started (``make up``).

The servers are found by the pid files ``scripts/services.sh`` writes under ``.local/<svc>/pid``;
a pid is used only when its command line is this checkout's server and it runs in the suite's
own network namespace, so the suite never stops a server it did not start (another checkout's,
or a shared one answering on the same ports). A restart is: signal the pid, wait until it is
gone, keep it down for the outage, then ``scripts/services.sh up <svc>`` (which waits until the
server answers its protocol). ``ensure_up`` restores both before the next test.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

from .processes import ROOT, cmdline, pid_alive

MAIN_CLASS = {"kafka": "kafka.Kafka", "cassandra": "org.apache.cassandra.service.CassandraDaemon"}


class NotOurServer(Exception):
    """The server answering here was not started by this checkout's ``make up``."""


class Servers:
    def __init__(self, root: Path = ROOT) -> None:
        self.root = root
        self.local = root / ".local"

    def pid(self, svc: str) -> int:
        """The pid of this checkout's ``svc`` server, checked."""
        path = self.local / svc / "pid"
        hint = f"the chaos suite restarts the servers this checkout started (`make up` in {self.root})"
        try:
            pid = int(path.read_text().strip())
        except (FileNotFoundError, ValueError):
            raise NotOurServer(f"{hint}: {path} names no server") from None
        line = " ".join(cmdline(pid))
        if not pid_alive(pid) or f"{self.local}/lib/{svc}/" not in line or MAIN_CLASS[svc] not in line:
            raise NotOurServer(f"{hint}: pid {pid} from {path} is not its running {svc}")
        if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"):
            raise NotOurServer(f"{hint}: pid {pid} runs in another network namespace than the tests")
        return pid

    async def stop(self, svc: str, sig: int = signal.SIGKILL, *, within: float = 90.0) -> float:
        """Signal ``svc`` by its pid and wait until it is gone; the monotonic time it went down."""
        pid = self.pid(svc)
        os.kill(pid, sig)
        deadline = time.monotonic() + within
        while pid_alive(pid):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            await asyncio.sleep(0.1)
        return time.monotonic()

    async def start(self, svc: str = "all") -> float:
        """``scripts/services.sh up <svc>``: returns when the server answers (monotonic time). A node
        replaying its commit log on a busy machine may take minutes: the readiness timeout is 600 s
        unless FANOUT_SERVICES_TIMEOUT says otherwise."""
        env = {**os.environ, "FANOUT_SERVICES_TIMEOUT": os.environ.get("FANOUT_SERVICES_TIMEOUT", "600")}
        proc = await asyncio.create_subprocess_exec(
            "bash", str(self.root / "scripts" / "services.sh"), "up", svc, cwd=self.root, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        if proc.returncode != 0:
            raise AssertionError(f"services.sh up {svc} failed ({proc.returncode}):\n{out.decode(errors='replace')}")
        return time.monotonic()

    async def ensure_up(self) -> None:
        await self.start("all")
