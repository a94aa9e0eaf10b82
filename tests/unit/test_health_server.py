"""The agents' HTTP endpoints (``fanout.agents.health.serve``: /healthz, /metrics) on a real server,
asked by a real client (http.client): HEAD, other methods, a port in use."""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest

from fanout.agents.health import Health, serve
from fanout.errors import FanoutError
from tests.http_helpers import free_port


def test_a_port_in_use_is_named_with_the_option_that_chose_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(FanoutError) as raised:
            serve(port, host="127.0.0.1")
    assert str(raised.value) == (f"cannot listen on 127.0.0.1:{port} (--metrics-port {port}): address already in use "
                                 "(choose another --metrics-port)")


@pytest.fixture
def health() -> Iterator[tuple[Health, int]]:
    """A writer's health on a real server (127.0.0.1, a free port)."""
    state = Health("health-server-test", stall_timeout_s=300)
    port = free_port()
    server = serve(port, state, host="127.0.0.1")
    try:
        yield state, port
    finally:
        server.shutdown()
        server.server_close()


def _ask(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("state", ["running", "stalled"])
def test_head_answers_as_get_without_the_body(health: tuple[Health, int], state: str) -> None:
    """A probe that uses HEAD sees what GET says (it saw 501 from every agent)."""
    agent, port = health
    agent.set(state)
    status, headers, body = _ask(port, "GET", "/healthz")
    assert status == (200 if state == "running" else 503) and json.loads(body)["state"] == state
    head_status, head_headers, head_body = _ask(port, "HEAD", "/healthz")
    assert (head_status, head_body) == (status, b"")
    assert head_headers["content-type"] == headers["content-type"] == "application/json"
    assert head_headers["content-length"] == headers["content-length"] == str(len(body))


def test_head_of_the_metrics_and_of_an_unknown_path(health: tuple[Health, int]) -> None:
    _, port = health
    status, headers, body = _ask(port, "HEAD", "/metrics")
    assert status == 200 and body == b"" and headers["content-type"].startswith("text/plain; version=")
    assert int(headers["content-length"]) > 0  # GET's length (the counters may move between two asks)
    status, headers, body = _ask(port, "HEAD", "/nowhere")
    assert status == 404 and body == b"" and headers["content-length"] == str(len(_ask(port, "GET", "/nowhere")[2]))


@pytest.mark.parametrize(("method", "body"), [("POST", b'{"a": 1}'), ("PUT", b"x"), ("DELETE", None),
                                              ("OPTIONS", None), ("PATCH", b""), ("FOO", None)])
def test_other_methods_are_405_with_allow(health: tuple[Health, int], method: str, body: bytes | None) -> None:
    _, port = health
    status, headers, answer = _ask(port, method, "/healthz", body)
    assert status == 405, (status, answer)
    assert headers["allow"] == "GET, HEAD"
    assert headers["content-type"] == "text/plain" and answer == b"method not allowed: use GET or HEAD\n"
    assert _ask(port, "GET", "/healthz")[0] == 200  # still serving
