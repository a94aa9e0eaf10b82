"""Fixtures of the chaos suite: the scale, the run's log directory, this checkout's servers and one
pipeline (topics + keyspace) per scenario. Every scenario prints a summary line at the end."""

from __future__ import annotations

import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from .report import Summaries
from .scale import Scale, current
from .servers import NotOurServer, Servers
from .stack import Stack

_RUN_DIR = pytest.StashKey[Path]()
_SUMMARIES = pytest.StashKey[Summaries]()


def pytest_configure(config: pytest.Config) -> None:
    base = Path(os.environ.get("FANOUT_CHAOS_LOG_DIR", "/tmp/fanout-chaos"))
    config.stash[_RUN_DIR] = base / time.strftime("%Y%m%d-%H%M%S")


def pytest_report_header(config: pytest.Config) -> str:
    return f"chaos: scale={current().name}, agents' logs under {config.stash[_RUN_DIR]}"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    summaries = config.stash.get(_SUMMARIES, None)
    if summaries is None or not summaries.lines:
        return
    terminalreporter.section("chaos summary")
    for line in summaries.lines:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def scale() -> Scale:
    return current()


@pytest.fixture(scope="session")
def run_dir(pytestconfig: pytest.Config) -> Path:
    path = pytestconfig.stash[_RUN_DIR]
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def summaries(pytestconfig: pytest.Config, run_dir: Path) -> Summaries:
    pytestconfig.stash[_SUMMARIES] = Summaries(run_dir)
    return pytestconfig.stash[_SUMMARIES]


@pytest.fixture(scope="session")
async def servers() -> AsyncIterator[Servers]:
    """This checkout's broker and node; both are running again when the session ends."""
    control = Servers()
    problem = ""
    try:
        control.pid("kafka")
        control.pid("cassandra")
    except NotOurServer as exc:
        problem = str(exc)
    if problem:
        pytest.fail(problem, pytrace=False)
    try:
        yield control
    finally:
        await control.ensure_up()


@pytest.fixture
async def make_stack(
    request: pytest.FixtureRequest, run_dir: Path, servers: Servers
) -> AsyncIterator[Callable[..., Awaitable[Stack]]]:
    """``await make_stack(FANOUT_X="...")``: a created pipeline; dropped after the test unless
    FANOUT_CHAOS_KEEP=1."""
    made: list[Stack] = []

    async def make(**settings: str) -> Stack:
        log_dir = run_dir / request.node.name
        log_dir.mkdir(parents=True, exist_ok=True)
        stack = Stack(request.node.name, log_dir, dict(settings))
        await stack.create()
        made.append(stack)
        return stack

    yield make
    await servers.ensure_up()  # a scenario that failed mid-outage must not break the next one
    if os.environ.get("FANOUT_CHAOS_KEEP") != "1":
        for stack in made:
            await stack.drop()
