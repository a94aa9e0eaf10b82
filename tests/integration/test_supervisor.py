"""Issue 11 item 6: ``fanout worker all`` restarts a child that dies (with backoff), gives up loudly
on a crash loop, takes its children along when it is SIGKILLed, and runs N of every role."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path

import pytest
from aiokafka.admin import NewTopic

from fanout.agents.topics import delete_topics, topic_specs
from fanout.cassandra import CassandraStore
from fanout.kafka import KafkaClients
from fanout.settings import Settings
from tests.integration.pipeline_helpers import (
    WorkerProcess,
    feed_ids,
    pipeline,
    pipeline_settings,
    produce_raw,
    wait_drained,
    wait_for,
)

pytestmark = pytest.mark.integration


def children_of(pid: int) -> dict[int, str]:
    """pid -> command line of the live (not zombie) children of ``pid``."""
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        state, ppid = fields[0], int(fields[1])
        if ppid == pid and state != "Z":
            found[int(entry.name)] = cmdline
    return found


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2:].split()[0] != "Z"


def roles(children: dict[int, str]) -> list[str]:
    out = []
    for cmd in children.values():
        words = cmd.split()
        role = words[words.index("worker") + 1]
        if role == "writer":
            role += "-" + words[words.index("--priority") + 1]
        out.append(role)
    return sorted(out)


async def wait_children(supervisor: WorkerProcess, count: int, within: float = 60) -> dict[int, str]:
    async def enough() -> bool:
        return len(children_of(supervisor.pid)) == count

    await wait_for(enough, within, f"{count} children of the supervisor")
    return children_of(supervisor.pid)


def _event(activity_id: str, minute: int) -> bytes:
    return json.dumps({"actor": "ann", "verb": "pin", "object": activity_id, "id": activity_id,
                       "time": f"2024-01-01T00:{minute:02d}:00Z"}).encode()


async def test_worker_all_runs_n_of_every_role() -> None:
    settings = pipeline_settings()
    async with pipeline(settings):
        supervisor = WorkerProcess(settings, "all", "--planners", "2", "--high-writers", "1", "--low-writers", "2",
                                   "--follows", "2")
        try:
            children = await wait_children(supervisor, 7)
            assert roles(children) == ["follows", "follows", "planner", "planner", "writer-high", "writer-low",
                                       "writer-low"]
        finally:
            assert await supervisor.terminate() == 0, supervisor.log()[-3000:]


async def test_a_killed_child_is_restarted_and_the_pipeline_goes_on() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        await store.set_follow("fan", "ann", True, 1)
        supervisor = WorkerProcess(settings, "all", "--high-writers", "1")
        try:
            children = await wait_children(supervisor, 4)
            planner = next(pid for pid, cmd in children.items() if " planner" in cmd)
            os.kill(planner, signal.SIGKILL)
            await asyncio.sleep(3)
            assert supervisor.proc.poll() is None, supervisor.log()[-3000:]  # the supervisor carries on

            async def replaced() -> bool:
                now = children_of(supervisor.pid)
                return len(now) == 4 and planner not in now and roles(now) == roles(children)

            await wait_for(replaced, 60, "a new planner")
            await produce_raw(settings, "activities", [(b"ann", _event("after-kill", 1))])
            await wait_drained(settings, within=90)
            assert await feed_ids(store, "timeline:fan") == ["after-kill"]
            assert "restarting it" in supervisor.log()
        finally:
            assert await supervisor.terminate() == 0, supervisor.log()[-3000:]


async def test_a_crash_loop_stops_the_supervisor_loudly_after_bounded_tries() -> None:
    settings = pipeline_settings()
    # The follows topic already holds a record no group ever committed: the follows agent refuses
    # to start (exit 2) every time, a crash loop; the other agents run.
    async with KafkaClients(settings).admin() as admin:
        await admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs)
                                   for name, (partitions, configs) in topic_specs(settings).items()])
    store = await CassandraStore.connect(settings)  # a migrated keyspace: agents refuse to start before it
    await store.migrate()
    try:
        await produce_raw(settings, "follows", [(b"fan", json.dumps({"follower": "fan", "followee": "ann"}).encode())])
        started = time.monotonic()
        supervisor = WorkerProcess(settings, "all", "--high-writers", "1", "--max-restarts", "2")
        try:
            code = await asyncio.wait_for(asyncio.to_thread(supervisor.proc.wait), 120)
        finally:
            await supervisor.terminate()  # closes its log; stops it if it still runs
        took = time.monotonic() - started
        log = supervisor.log()
        assert code == 2, log[-3000:]
        assert log.count("no committed offset") >= 3  # the first run and two restarts
        assert "follows#3 failed 3 times in a row" in log and "giving up" in log, log[-3000:]
        assert took < 100
    finally:
        await delete_topics(settings)
        await store.drop_keyspace()
        await store.close()


async def test_sigkill_of_the_supervisor_takes_every_child_along() -> None:
    settings = pipeline_settings()
    async with pipeline(settings):
        supervisor = WorkerProcess(settings, "all", "--high-writers", "1")
        children: dict[int, str] = {}
        try:
            children = await wait_children(supervisor, 4)

            async def consuming() -> bool:  # the children's output goes to the supervisor's log
                return supervisor.log().count(": consuming ") == 4

            await wait_for(consuming, 60, "every child consuming")
            supervisor.kill()

            async def all_gone() -> bool:
                return not any(alive(pid) for pid in children)

            await wait_for(all_gone, 30, "the children to exit after their supervisor was SIGKILLed")
        finally:
            for pid in children:  # never leave agents consuming, whatever the outcome
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def test_settings_reach_restarted_children_unchanged() -> None:
    from fanout.agents.supervisor import settings_env

    settings = pipeline_settings(agent_stall_timeout_s=12.5)
    assert Settings.from_env(settings_env(settings)) == settings
