"""Ids on the command line are checked before any server is asked, as events and HTTP check them."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fanout.codec import MAX_ID_BYTES

OVERSIZE = "é" * (MAX_ID_BYTES // 2 + 1)  # under 256 characters, over 256 bytes of UTF-8


@pytest.mark.parametrize(
    "argv",
    [
        ["trace", ""],
        ["trace", OVERSIZE],
        ["feed", ""],
        ["feed", OVERSIZE],
        ["feed", "ann", "--before", ""],
    ],
)
def test_a_bad_id_is_refused_in_one_line_without_a_server(argv: list[str]) -> None:
    env = {"FANOUT_CASSANDRA_HOSTS": "127.0.0.1:1", "PATH": "/usr/bin:/bin"}  # nothing listens there
    done = subprocess.run([sys.executable, "-m", "fanout", *argv], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"1 to {MAX_ID_BYTES} bytes of UTF-8" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "Cassandra" not in done.stderr
