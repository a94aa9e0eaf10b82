"""Running an agent: ``run_worker("planner" | "writer" | "follows" | "all", settings)``.

One agent per process is the deployment unit (the Cassandra driver is CPU-bound: processes
scale, threads do not). ``run_worker`` connects the Cassandra store (the pipeline always uses
Cassandra; ``settings.store`` only picks the eager mode's store), checks the topics, and
consumes until SIGTERM/SIGINT (graceful: the batch in progress finishes or is abandoned
uncommitted, within ``grace_seconds``; a second signal cancels at once) or cancellation.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any, NamedTuple

from fanout.settings import Settings
from fanout.store import Store

from . import PRIORITIES
from .base import Agent
from .follows import FollowsAgent
from .health import serve
from .planner import PlannerAgent
from .signals import stop_on_signals
from .stores import open_store
from .supervisor import supervise, watch_parent
from .writer import WriterAgent

log = logging.getLogger("fanout.agents")


#: Linux's autogroup scheduling: a session's processes share one group, weighed against other
#: sessions by the group's own nice value (``man 7 sched``); absent where the kernel has none.
AUTOGROUP = Path("/proc/self/autogroup")


class Yielded(NamedTuple):
    niceness: int  # the process's own, after ``os.nice``
    autogroup: bool  # its session's autogroup set to the same nice value too


def yield_cpu(role: str, priority: str | None, settings: Settings) -> Yielded | None:
    """Raise a LOW writer process's niceness by ``settings.low_nice`` (``FANOUT_LOW_NICE``), for
    the process that runs it (``fanout worker writer --priority low``, each LOW child of ``worker
    all``), never for an agent run inside another program. The LOW lane is the backlog of
    inactive followers: where the CPU is short, the kernel gives the LOW writer a smaller share
    (at 10 about a tenth of a nice-0 process's weight) and the HIGH writers, the planner and the
    servers more. A nice value only weighs against processes of the same autogroup (the same
    session) where the kernel groups by session: a LOW writer that leads its own session (each
    child of ``worker all``) sets its session's autogroup nice too, so that it yields to the other
    sessions, Kafka's and Cassandra's included; one started in a shell's session does not (that
    would slow the whole session). Containers and systemd units weigh cgroups the same way: there
    it yields only within its own. Call it before anything starts a thread (a thread keeps the
    niceness it started with). Returns what changed, or None when nothing did."""
    if role != "writer" or priority != "low" or not settings.low_nice:
        return None
    niceness = os.nice(settings.low_nice)
    autogroup = False
    if os.getsid(0) == os.getpid():  # alone in its session: its autogroup is its own
        try:
            AUTOGROUP.write_text(f"{settings.low_nice}\n")
            autogroup = True
        except OSError:  # no autogroup in this kernel, or not allowed: the niceness alone
            pass
    return Yielded(niceness, autogroup)


def build_agent(
    role: str, settings: Settings, store: Store, *, priority: str | None = None, **options: Any
) -> Agent:
    if role == "planner":
        return PlannerAgent(settings, store, **options)
    if role == "follows":
        return FollowsAgent(settings, store, **options)
    if role == "writer":
        if priority not in PRIORITIES:
            raise ValueError(f"a writer needs priority 'high' or 'low', not {priority!r}")
        return WriterAgent(settings, store, priority, **options)
    raise ValueError(f"unknown worker role {role!r}: planner, writer, follows or all")


async def run_worker(
    role: str,
    settings: Settings,
    *,
    priority: str | None = None,
    store: Store | None = None,
    stop: asyncio.Event | None = None,
    signals: bool = True,
    metrics_port: int | None = None,
    instance_id: str | None = None,
    grace_seconds: float = 6.0,
    session_timeout_ms: int = 10_000,
    start_from: str | None = None,
    parent_pid: int | None = None,
    **supervisor_options: Any,
) -> None:
    """Run one agent until cancelled, ``stop`` is set, or SIGTERM/SIGINT (when ``signals``), or
    the process ``parent_pid`` (``worker all``, the supervisor) is gone.

    ``role="all"`` runs the supervisor (every agent as a subprocess) instead. ``store``
    defaults to ``CassandraStore.connect(settings)`` (closed on exit; a given one is not).
    """
    stop = stop or asyncio.Event()
    if role == "all":
        with stop_on_signals(stop, enabled=signals):
            await supervise(settings, stop=stop, start_from=start_from, **supervisor_options)
        return
    if role == "writer" and priority == "low" and settings.low_max_in_flight:
        settings = settings.replace(max_in_flight=settings.low_max_in_flight)
    own_store = store is None
    if store is None:
        store = await open_store(settings)
    server = None
    watcher = asyncio.ensure_future(watch_parent(parent_pid, stop)) if parent_pid else None
    try:
        agent = build_agent(
            role,
            settings,
            store,
            priority=priority,
            instance_id=instance_id,
            grace_seconds=grace_seconds,
            session_timeout_ms=session_timeout_ms,
            start_from=start_from,
        )
        if metrics_port:
            server = serve(metrics_port, agent.health)
        with stop_on_signals(stop, task=asyncio.current_task(), enabled=signals):
            await agent.run(stop)
    finally:
        if watcher is not None:
            watcher.cancel()
        if server is not None:
            server.shutdown()
        if own_store:
            await store.close()
