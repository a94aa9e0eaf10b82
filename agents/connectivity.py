"""Is Kafka reachable? One log line per change of the answer, not one per retry.

During a broker outage aiokafka logs every retry of every client ("Unable to update metadata",
"Unable connect to node ...": tens of thousands of lines a minute across a few agents). Here:

* ``KafkaConnectivity`` tracks the state. Any sign of trouble (an aiokafka warning or error, a
  failed produce, commit or fetch) triggers a probe (a metadata request on a fresh admin client);
  a failed probe is the outage, logged once: ``Kafka unreachable since 12:00:01 (...)``. It then
  probes every ``probe_every`` seconds (or sees a success of the agent's own) and logs the return
  once: ``Kafka back after 35 s (1234 client log lines suppressed)``.
* ``QuietKafkaLogs`` is a logging filter on aiokafka's loggers: while Kafka is unreachable their
  warnings and errors are counted, not printed; otherwise each distinct message is printed at
  most once a minute (a flood of any other kind stays readable too).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime

from . import metrics
from .quietlogs import LoggerFamilyFilter

log = logging.getLogger("fanout.agents")

REPEAT_EVERY_S = 60.0


class KafkaConnectivity:
    """The agent's view of Kafka: up, or down since when."""

    def __init__(
        self, role: str, probe: Callable[[], Awaitable[object]], *, probe_every: float = 2.0,
        probe_timeout: float = 5.0,
    ) -> None:
        self.role = role
        self.probe = probe
        self.probe_every = probe_every
        self.probe_timeout = probe_timeout
        self.down_since: float | None = None  # time.time() of the first failed probe
        self.suppressed = 0
        self.outages = 0
        self._detail = ""
        self._checking: asyncio.Task[None] | None = None
        self._last_check = 0.0
        metrics.KAFKA_REACHABLE.labels(role).set(1)

    @property
    def is_down(self) -> bool:
        return self.down_since is not None

    def down_text(self) -> str | None:
        """``"12:00:01 (42 s)"`` during an outage, else None."""
        if self.down_since is None:
            return None
        return f"{_clock(self.down_since)} ({time.time() - self.down_since:.0f} s)"

    def trouble(self, detail: str) -> None:
        """Something failed in a way a Kafka outage would explain: check (at most every
        ``probe_every`` seconds, in the background)."""
        self._detail = self._detail or detail
        if self._checking is not None and not self._checking.done():
            return
        if not self.is_down and time.monotonic() - self._last_check < self.probe_every:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # logged from another thread: the next trouble in the loop checks
            return
        self._checking = loop.create_task(self._check())

    def reachable(self) -> None:
        """The agent talked to Kafka successfully (a commit, an acknowledged produce)."""
        if self.is_down:
            self._back()

    async def _check(self) -> None:
        while True:
            self._last_check = time.monotonic()
            try:
                await asyncio.wait_for(self.probe(), timeout=self.probe_timeout)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not self.is_down:
                    self._down(exc)
                await asyncio.sleep(self.probe_every)
                continue
            self._detail = ""
            if self.is_down:
                self._back()
            return

    def _down(self, exc: BaseException) -> None:
        self.down_since = time.time()
        self.outages += 1
        metrics.KAFKA_REACHABLE.labels(self.role).set(0)
        cause = self._detail or f"{type(exc).__name__}: {exc}"
        log.error("%s: Kafka unreachable since %s (%s); retrying quietly", self.role, _clock(self.down_since), cause)

    def _back(self) -> None:
        if self.down_since is None:
            return
        took = time.time() - self.down_since
        log.warning("%s: Kafka back after %.0f s (%d client log lines suppressed)", self.role, took, self.suppressed)
        self.down_since = None
        self._detail = ""
        self.suppressed = 0
        metrics.KAFKA_REACHABLE.labels(self.role).set(1)

    async def close(self) -> None:
        if self._checking is not None and not self._checking.done():
            self._checking.cancel()
            await asyncio.gather(self._checking, return_exceptions=True)


class QuietKafkaLogs(LoggerFamilyFilter):
    """Filter for aiokafka's loggers (``install``/``uninstall``); see the module docstring."""

    def __init__(self, connectivity: KafkaConnectivity) -> None:
        super().__init__("aiokafka")
        self.connectivity = connectivity

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return True
        tracker = self.connectivity
        tracker.trouble(record.getMessage()[:300])
        if tracker.is_down:
            tracker.suppressed += 1
            return False
        if self.repeated(record, REPEAT_EVERY_S):
            tracker.suppressed += 1
            return False
        return True


def _clock(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp).astimezone().strftime("%H:%M:%S")
