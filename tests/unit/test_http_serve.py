"""``fanout serve`` as a real process: it starts with both backends down, says so in /readyz,
answers 503 problems for what needs them, and stops cleanly on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from tests.http_helpers import assert_problem, free_port


def test_fanout_serve_starts_with_the_backends_down_and_stops_on_sigterm() -> None:
    port = free_port()
    env = {**os.environ, "FANOUT_KAFKA_BOOTSTRAP": "127.0.0.1:1", "FANOUT_CASSANDRA_PORT": "1",
           "FANOUT_HTTP_BACKEND_TIMEOUT_SECONDS": "2"}
    proc = subprocess.Popen([sys.executable, "-m", "fanout", "serve", "--port", str(port), "--log-level", "warning"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=20) as client:
            deadline = time.monotonic() + 30
            while True:
                try:
                    health = client.get("/healthz")
                    break
                except httpx.TransportError:
                    assert proc.poll() is None and time.monotonic() < deadline, "fanout serve did not start"
                    time.sleep(0.2)
            assert health.status_code == 200
            ready = client.get("/readyz")
            assert ready.status_code == 503
            assert set(ready.json()["checks"]) == {"cassandra", "kafka"}
            assert "ok" not in ready.json()["checks"].values()
            assert "Cassandra" in assert_problem(client.get("/v1/feeds/timeline/u"), 503)["title"]
            posted = client.post("/v1/activities", json={"actor": "a", "verb": "v", "object": "o"})
            assert "Kafka" in assert_problem(posted, 503)["title"]
            assert_problem(client.post("/v1/activities", json={"actor": ""}), 422, "actor")  # checked first
            for _ in range(4):  # each a new attempt to reach either backend
                assert client.get("/v1/feeds/timeline/u").status_code == 503
                assert client.post("/v1/activities", json={"actor": "a", "verb": "v", "object": "o"}).status_code == 503
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        assert proc.stdout is not None
        lines = proc.stdout.read().decode().splitlines()
        # the clients' own warnings are printed (the driver's had no handler: nothing was) with the
        # time, each distinct one once a minute (aiokafka's came once per attempt, without the time)
        driver = [line for line in lines if "[control connection] Error connecting to 127.0.0.1:1" in line]
        kafka = [line for line in lines if 'Unable connect to "127.0.0.1:1"' in line]
        assert len(driver) == 1 and len(kafka) == 1, lines
        assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d", line) for line in driver + kafka), lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        assert proc.stdout is not None
        proc.stdout.close()


def test_fanout_serve_prints_the_drivers_warnings_as_the_agents_do(monkeypatch: pytest.MonkeyPatch) -> None:
    """While serving, the driver's loggers carry ``QuietDriverLogs`` (a node away: each warning once a
    minute, on one line, though the store retries it every 2 s); afterwards they do not."""
    import argparse
    import logging

    import uvicorn

    from fanout.agents.quietlogs import QuietDriverLogs
    from fanout.cli.serve import _serve
    from fanout.settings import Settings

    seen: list[bool] = []

    def run(server: uvicorn.Server, sockets: object = None) -> None:
        seen.append(any(isinstance(f, QuietDriverLogs) for f in logging.getLogger("cassandra.cluster").filters))

    monkeypatch.setattr(uvicorn.Server, "run", run)
    args = argparse.Namespace(host="127.0.0.1", port=free_port(), log_level="warning", shutdown_timeout=30)
    assert _serve(args, Settings()) == 0
    assert seen == [True]
    assert not any(isinstance(f, QuietDriverLogs) for f in logging.getLogger("cassandra.cluster").filters)
