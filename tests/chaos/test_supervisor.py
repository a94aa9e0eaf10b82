"""``fanout worker all`` under SIGKILL.

* A child SIGKILLed under the supervisor is restarted (a new process of the same role appears), the
  other children keep running, and the fanout in progress finishes exactly.
* SIGKILL of the supervisor itself leaves no agent behind: every child exits, and an event
  produced afterwards is not consumed by anyone.

Children are found by pid (``/proc/<pid>/stat`` parent pid) and told apart by their command line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import Awaitable, Callable

import pytest

from .drive import produce, seeded
from .kafka_io import Producer, safe_lag, wait_drained
from .model import Model
from .processes import AgentProcess, children_of, cmdline, pid_alive, start_flags
from .report import Summaries
from .rows import Comparison, read_rows, summarize
from .scale import Scale
from .stack import Stack
from .workload import celebrity_graph, celebrity_posts

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

CHILDREN = 5  # planner, 2 high writers, 1 low writer, follows
RESTART_WITHIN = 60.0  # a killed child is back within this (backoff included)
ORPHANS_GONE_WITHIN = 20.0  # children of a SIGKILLed supervisor are gone within this


def _roles(pid: int) -> dict[int, str]:
    """child pid -> its role ('writer-high', ...), from its command line.

    A child forked but not yet exec'd still shows the supervisor's own command line: it has no role yet
    and is left out until it has one (counting it as the role 'all' made a restarted planner look
    missing).
    """
    out: dict[int, str] = {}
    own = cmdline(pid)
    for child in children_of(pid):
        args = cmdline(child)
        if "worker" not in args or args == own:
            continue
        role = args[args.index("worker") + 1]
        if "--priority" in args:
            role += "-" + args[args.index("--priority") + 1]
        out[child] = role
    return out


async def _children(pid: int, count: int, within: float) -> dict[int, str]:
    deadline = time.monotonic() + within
    while True:
        found = _roles(pid)
        if len(found) >= count or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


async def test_supervisor_restarts_children_and_leaves_no_orphans(
    make_stack: Callable[..., Awaitable[Stack]], scale: Scale, summaries: Summaries
) -> None:
    seed, rng = seeded()
    stack = await make_stack(FANOUT_MAX_LENGTH="100000", FANOUT_CHUNK_SIZE="25")
    model = Model(follow_activity_limit=5000)
    args = ("--high-writers", "2", "--low-writers", "1", *start_flags())
    supervisor = AgentProcess("supervisor", "all", args, stack.env, stack.log_dir)
    supervisor.start()
    findings: list[str] = []
    orphans: list[int] = []
    started = time.monotonic()
    restarted = False
    result = Comparison()
    try:
        children = await _children(supervisor.pid, CHILDREN, 60)
        assert len(children) == CHILDREN, f"worker all started {children}\n{supervisor.tail()}"
        async with Producer(stack.prefix) as producer:
            await produce(producer, model, celebrity_graph(rng, scale.member_followers))
            await produce(producer, model, celebrity_posts(rng, scale.member_posts), seconds=3)
            victim = next(pid for pid, role in children.items() if role == "planner")
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + RESTART_WITHIN
            back = await _children(supervisor.pid, CHILDREN, RESTART_WITHIN)
            while victim in back and time.monotonic() < deadline:  # listed (a zombie) until it is reaped
                await asyncio.sleep(0.2)
                back = await _children(supervisor.pid, CHILDREN, max(0.0, deadline - time.monotonic()))
            restarted = "planner" in back.values() and victim not in back
            stopped = [pid for pid in children if pid != victim and pid not in back]
            if stopped:
                findings.append(f"other children stopped when one was killed: {[children[p] for p in stopped]}")
            if not restarted or not supervisor.running():
                findings.append(f"a SIGKILLed child was not restarted within {RESTART_WITHIN:.0f}s "
                                f"(supervisor {'running' if supervisor.running() else 'exited'}): {back}")
                if not supervisor.running():
                    supervisor.start()
            await wait_drained(stack.prefix, scale.drain_seconds, trace=stack.log_dir / "lag.log")
            result = summarize(await read_rows(stack.keyspace), model)

            children = await _children(supervisor.pid, CHILDREN, 60)
            await supervisor.kill(signal.SIGKILL)
            for _ in range(int(ORPHANS_GONE_WITHIN * 5)):
                if not any(pid_alive(p) for p in children):
                    break
                await asyncio.sleep(0.2)
            orphans = [p for p in children if pid_alive(p)]
            if orphans:
                findings.append(f"{len(orphans)} agents outlived their SIGKILLed supervisor by "
                                f"{ORPHANS_GONE_WITHIN:.0f}s: {[children[p] for p in orphans]}")
            await produce(producer, model, celebrity_posts(rng, 1, first=scale.member_posts), seconds=0)
        await asyncio.sleep(12)  # beyond the consumers' session timeout
        left = await safe_lag(stack.prefix, ("planner",))
        if not left or left["planner"] < 1:
            findings.append(f"an event produced after the supervisor's SIGKILL was consumed: lag {left}")
    finally:
        for pid in orphans:
            os.kill(pid, signal.SIGKILL)
        if supervisor.running():
            await supervisor.kill(signal.SIGTERM)
    summaries.add(
        "supervisor", seed=seed, restarted=int(restarted), orphans=len(orphans), lost=result.lost,
        extra=result.extra, dup=result.dup, wrong=result.wrong, rows=result.rows,
        secs=time.monotonic() - started, logs=stack.log_dir,
    )
    assert not findings, "\n".join(findings) + f"\nsupervisor log:\n{supervisor.tail(30)}"
    assert result.exact, result.report()
