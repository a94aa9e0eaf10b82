"""``fanout serve`` and ``fanout worker`` as real processes: the options about serving and logging
(``--shutdown-timeout``, a port that cannot be listened on, ``--log-level``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.http_helpers import free_port

# nothing listens on port 1: serve starts with both backends down, as in test_http_serve
_BACKENDS_DOWN = {"FANOUT_KAFKA_BOOTSTRAP": "127.0.0.1:1", "FANOUT_CASSANDRA_PORT": "1",
                  "FANOUT_HTTP_BACKEND_TIMEOUT_SECONDS": "2"}


def _fanout(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "fanout", *argv], capture_output=True, text=True,
                          env={**os.environ, **_BACKENDS_DOWN}, timeout=60)


def _wait_until_serving(proc: subprocess.Popen[bytes], port: int) -> None:
    deadline = time.monotonic() + 30
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
        while True:
            try:
                assert client.get("/healthz").status_code == 200
                return
            except httpx.TransportError:
                assert proc.poll() is None and time.monotonic() < deadline, "fanout serve did not start"
                time.sleep(0.2)


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A port some other program listens on (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def test_serve_stops_on_sigterm_within_the_shutdown_timeout_while_a_body_is_half_sent() -> None:
    """A client that sent 8 bytes of a 100-byte body and went quiet does not keep the server
    running: after ``--shutdown-timeout`` the request is cut and the server exits 0."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "fanout", "serve", "--port", str(port), "--log-level", "warning",
                             "--shutdown-timeout", "2"], env={**os.environ, **_BACKENDS_DOWN},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_until_serving(proc, port)
        with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
            client.sendall(b"POST /v1/activities HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           b"Content-Length: 100\r\n\r\n" + b'{"actor"')
            time.sleep(0.5)  # the server holds the request, waiting for the rest of its body
            assert proc.poll() is None
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0  # never, before: it waited for the client to hang up
            assert time.monotonic() - started < 10
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_shutdown_timeout_is_a_number_of_seconds() -> None:
    done = _fanout("serve", "--shutdown-timeout", "-1")
    assert done.returncode == 2
    assert "argument --shutdown-timeout: must be 0 or more, not -1" in done.stderr, done.stderr


def test_serve_on_a_port_in_use_says_so_in_one_line(busy_port: int) -> None:
    done = _fanout("serve", "--port", str(busy_port))
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [f"fanout: cannot listen on 127.0.0.1:{busy_port}: address already in use "
                                        "(choose another --port or --host)"], done.stderr


def test_serve_on_an_address_of_another_machine_says_so_in_one_line() -> None:
    done = _fanout("serve", "--host", "192.0.2.1", "--port", "8000")  # TEST-NET-1: no interface has it
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["fanout: cannot listen on 192.0.2.1:8000: not an address of this machine "
                                        "(choose another --port or --host)"], done.stderr


@pytest.mark.parametrize("role", ["planner", "follows", "all"])
def test_a_metrics_port_in_use_is_named_with_its_option_in_one_line(busy_port: int, role: str) -> None:
    """Before anything connects to Kafka or Cassandra (neither answers here)."""
    first = busy_port - 2 if role == "all" else busy_port  # worker all: the third agent's port is taken
    done = _fanout("worker", role, "--metrics-port", str(first))
    assert done.returncode == 2, done.stderr
    given = f"--metrics-port {first}"
    if role == "all":
        given += f" gives worker all's 6 agents {first} to {first + 5}"
    assert done.stderr.splitlines() == [f"fanout: cannot listen on 0.0.0.0:{busy_port} ({given}): address already "
                                        "in use (choose another --metrics-port)"], done.stderr


def test_worker_all_metrics_ports_past_65535_are_refused() -> None:
    done = _fanout("worker", "all", "--metrics-port", "65533")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["fanout: --metrics-port 65533 gives worker all's 6 agents 65533 to 65538: "
                                        "over 65535 (choose another --metrics-port)"], done.stderr


@pytest.mark.parametrize(("role", "level"), [("planner", "bogus"), ("all", "verbose"), ("follows", "")])
def test_an_unknown_log_level_is_refused_in_one_line(role: str, level: str) -> None:
    done = _fanout("worker", role, "--log-level", level)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"argument --log-level: invalid choice: {level.upper()!r}" in errors[0], done.stderr
    assert "'DEBUG', 'INFO', 'WARNING', 'ERROR', 'CRITICAL'" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("level", ["debug", "Warning", "ERROR"])
def test_a_log_level_is_taken_in_any_case(level: str) -> None:
    from fanout.cli import build_parser

    assert build_parser().parse_args(["worker", "planner", "--log-level", level]).log_level == level.upper()
    assert build_parser().parse_args(["serve", "--log-level", level]).log_level == level.lower()
