"""An agent's health: its state, its last progress, and the HTTP endpoints that show them.

Progress is a commit, or having nothing to do. An agent with work pending (a partition in flight
or failing) that has not committed for ``agent_stall_timeout_s`` while Kafka answers is stalled:
it says so and exits non-zero (``Stalled``) so that its supervisor restarts it. While Kafka is
unreachable it waits instead (a restart would not help) and says so.

``serve(port, health)`` answers on one port, in a daemon thread:

* ``GET /metrics``: Prometheus text (``fanout_agent_last_progress_timestamp_seconds``,
  ``fanout_agent_state``, the counters of ``fanout.agents.metrics``);
* ``GET /healthz``: JSON ``{"role", "state", "healthy", "last_progress_age_s", ...}``, status 200
  when healthy (``starting``, ``running``), else 503 (``retrying``, ``kafka-unreachable``,
  ``stalled``, ``stopping``).

``HEAD`` answers as ``GET`` without the body (a probe that uses it sees the same status); any other
method is 405 with ``Allow: GET, HEAD``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from fanout.errors import FanoutError

from . import metrics

HOST = "0.0.0.0"  # where ``serve`` listens: every interface
STATES = ("starting", "running", "retrying", "kafka-unreachable", "stalled", "stopping")
HEALTHY = frozenset({"starting", "running"})


class Stalled(FanoutError):
    """The agent made no progress for longer than ``agent_stall_timeout_s``: it exits (status 2)
    so that its supervisor restarts it. It ran that long, past ``worker all``'s 60 s, so the
    restart starts a fresh count: only a stall timeout under a minute can end in a crash loop."""


@dataclass
class Health:
    """What an agent reports about itself (written by its event loop, read by the HTTP thread)."""

    role: str
    stall_timeout_s: float
    clock: Callable[[], float] = time.monotonic
    state: str = "starting"
    detail: str = ""
    last_progress: float = field(default=0.0)  # clock() of the last progress
    last_progress_wall: float = field(default_factory=time.time)
    waiting_since: float = field(default=0.0)  # the stall timer: last progress, or Kafka's return
    snapshot: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last_progress = self.waiting_since = self.clock()
        self.publish()

    def progress(self) -> None:
        """Something was committed, or there was nothing to do."""
        self.last_progress = self.waiting_since = self.clock()
        self.last_progress_wall = time.time()
        metrics.LAST_PROGRESS.labels(self.role).set(self.last_progress_wall)
        self.publish()

    def stalled_for(self) -> float:
        return self.clock() - self.waiting_since

    def update(self, *, pending: bool, failing: list[str], kafka_down_since: str | None) -> None:
        """Recompute the state once per watchdog tick; raise ``Stalled`` past the timeout."""
        if not pending and not failing:
            self.progress()
        if kafka_down_since is not None:
            self.waiting_since = self.clock()  # an outage does not count: a restart would not help
            state, detail = "kafka-unreachable", f"Kafka unreachable since {kafka_down_since}"
        elif self.stalled_for() > self.stall_timeout_s:
            state, detail = "stalled", f"no progress for {self.stalled_for():.0f}s"
        elif failing:
            state, detail = "retrying", f"re-delivering {', '.join(failing)}"
        else:
            state, detail = "running", ""
        self.set(state, detail)
        if state == "stalled":
            raise Stalled(
                f"{self.role}: no progress for {self.stalled_for():.0f}s with work pending"
                f"{' (' + ', '.join(failing) + ' failing)' if failing else ''} while Kafka answers: "
                "exiting so that the supervisor restarts this agent (FANOUT_AGENT_STALL_TIMEOUT_S)"
            )

    def set(self, state: str, detail: str = "") -> None:
        if state != self.state:
            metrics.AGENT_STATE.labels(self.role, self.state).set(0)
        self.state, self.detail = state, detail
        metrics.AGENT_STATE.labels(self.role, state).set(1)
        self.publish()

    def publish(self) -> None:
        self.snapshot = {
            "role": self.role,
            "state": self.state,
            "healthy": self.state in HEALTHY,
            "detail": self.detail,
            "last_progress": self.last_progress_wall,
            "last_progress_age_s": round(self.clock() - self.last_progress, 3),
            "stall_timeout_s": self.stall_timeout_s,
        }


class _Handler(BaseHTTPRequestHandler):
    health: Health | None = None

    def do_GET(self) -> None:
        self._send(*self._answer())

    def do_HEAD(self) -> None:
        status, body, content_type = self._answer()
        self._send(status, body, content_type, head=True)

    def parse_request(self) -> bool:
        """A request line and headers read; 405 (and the connection closed: its body is not read)
        for a method other than GET and HEAD, where the base class answers 501 in HTML."""
        if not super().parse_request():
            return False
        if self.command in ("GET", "HEAD"):
            return True
        self.close_connection = True
        self._send(405, b"method not allowed: use GET or HEAD\n", "text/plain",
                   headers={"Allow": "GET, HEAD", "Connection": "close"})
        return False  # answered: the base class reads no further

    def _answer(self) -> tuple[int, bytes, str]:
        path = self.path.split("?", 1)[0]
        if path == "/metrics":
            return 200, generate_latest(), CONTENT_TYPE_LATEST
        if path == "/healthz" and self.health is not None:
            snapshot = self.health.snapshot
            return 200 if snapshot.get("healthy") else 503, json.dumps(snapshot).encode(), "application/json"
        return 404, b"not found: try /metrics or /healthz\n", "text/plain"

    def _send(self, status: int, body: bytes, content_type: str, *, head: bool = False,
              headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))  # HEAD: the length of GET's body
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def serve(port: int, health: Health | None = None, host: str = HOST) -> ThreadingHTTPServer:
    """Serve /metrics and /healthz on ``port`` in a daemon thread; ``shutdown()`` the result to stop.
    A port it cannot listen on is a ``FanoutError`` naming it and ``--metrics-port`` (exit status 2)."""
    handler = type("HealthHandler", (_Handler,), {"health": health})
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        reason = (exc.strerror or str(exc)).lower()
        raise FanoutError(f"cannot listen on {host}:{port} (--metrics-port {port}): {reason} "
                          "(choose another --metrics-port)") from None
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name=f"fanout-http-{port}", daemon=True).start()
    return server
