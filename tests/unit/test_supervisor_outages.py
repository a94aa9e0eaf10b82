"""``worker all`` restarts a child that exits for an outage (``EXIT_UNAVAILABLE``: Kafka or
Cassandra not reachable or timing out) until the servers answer, however many times it takes;
other failures in a row still end in a crash loop. Real child processes, exiting with scripted
codes."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from fanout.agents.supervisor import _Child, _Supervisor
from fanout.errors import EXIT_UNAVAILABLE

# exits with the code of its run's number in argv[2] (comma separated), then runs until killed
SCRIPT = """
import os, sys, time
path, codes = sys.argv[1], sys.argv[2].split(",")
runs = int(open(path).read()) if os.path.exists(path) else 0
with open(path + ".tmp", "w") as out:  # replaced whole: the test never reads a half-written count
    out.write(str(runs + 1))
os.replace(path + ".tmp", path)
if runs < len(codes):
    sys.exit(int(codes[runs]))
time.sleep(120)
"""


def _child(tmp_path: Path, codes: list[int]) -> tuple[_Child, Path]:
    runs = tmp_path / "runs"
    return _Child("writer-low#4", [sys.executable, "-c", SCRIPT, str(runs), ",".join(map(str, codes))]), runs


def _boss(stop: asyncio.Event) -> _Supervisor:
    return _Supervisor({}, stop, max_restarts=2, stable_after_s=60.0, first_backoff_s=0.001)


async def test_exits_for_an_outage_do_not_count_toward_the_crash_loop(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    # killed (an OOM kill), then 8 restarts refused while Cassandra is down: more than max_restarts
    codes = [137] + [EXIT_UNAVAILABLE] * 8
    child, runs = _child(tmp_path, codes)
    stop = asyncio.Event()
    keeper = asyncio.ensure_future(_boss(stop).keep(child))
    for _ in range(1200):  # a minute for 10 starts of a Python child on a loaded 2-core box
        if runs.exists() and int(runs.read_text()) == len(codes) + 1 and child.proc is not None:
            break
        assert not keeper.done(), "gave up during the outage"
        await asyncio.sleep(0.05)
    assert int(runs.read_text()) == len(codes) + 1  # running again once the servers answer
    assert (child.crashes, child.failures) == (1, len(codes))
    outage_lines = [r.getMessage() for r in caplog.records if "not reachable" in r.getMessage()]
    assert len(outage_lines) == 1, outage_lines  # one line when the outage begins, not one a restart
    stop.set()
    assert child.proc is not None
    child.proc.kill()
    assert await asyncio.wait_for(keeper, 10) == 0


async def test_other_failures_in_a_row_still_end_in_a_crash_loop(tmp_path: Path) -> None:
    child, runs = _child(tmp_path, [2, EXIT_UNAVAILABLE, 2, EXIT_UNAVAILABLE, 2, 0])
    assert await asyncio.wait_for(_boss(asyncio.Event()).keep(child), 60) == 2
    assert int(runs.read_text()) == 5  # the third refused start (2) was the last
