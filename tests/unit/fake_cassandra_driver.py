"""A fake of the cassandra-driver as ``fanout.cassandra.bridge`` uses it: no server.

``FakeSession.execute_async`` returns a ``FakeResponse`` (the driver's ``ResponseFuture``:
``add_callbacks(ok, err)``, ``result()`` with ``current_rows`` and ``paging_state``). Answers are
delivered on a thread of the fake's own, as the driver's IO thread does: either at once by an
``answer`` function (held back while ``gate`` is closed), or by the test with ``reply``.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

Outcome = tuple[list[Any], bytes | None] | BaseException  # (rows, paging state) or the failure
Answer = Callable[[Any, bytes | None], Outcome]


@dataclass
class FakeResultSet:
    current_rows: list[Any]
    paging_state: bytes | None


@dataclass
class FakeStatement:
    cql: str
    fetch_size: int | None = None


@dataclass
class FakeResponse:
    statement: Any
    kwargs: dict[str, Any]
    answered_on: int | None = None  # the thread that delivered the answer
    _outcome: Outcome | None = None
    _callbacks: tuple[Callable[[Any], None], Callable[[BaseException], None]] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add_callbacks(self, callback: Callable[[Any], None], errback: Callable[[BaseException], None]) -> None:
        with self._lock:
            outcome = self._outcome
            if outcome is None:
                self._callbacks = (callback, errback)
                return
        _deliver(outcome, callback, errback)  # already answered: at once, on this thread, as the driver does

    def complete(self, outcome: Outcome) -> None:
        with self._lock:
            self._outcome = outcome
            callbacks = self._callbacks
        self.answered_on = threading.get_ident()
        if callbacks is not None:
            _deliver(outcome, *callbacks)

    def result(self) -> FakeResultSet:
        outcome = self._outcome
        assert outcome is not None, "result() before the answer: the driver would block the loop"
        if isinstance(outcome, BaseException):
            raise outcome
        return FakeResultSet(*outcome)


def _deliver(outcome: Outcome, callback: Callable[[Any], None], errback: Callable[[BaseException], None]) -> None:
    if isinstance(outcome, BaseException):
        errback(outcome)
    else:
        callback(outcome[0])


def no_rows(statement: Any, paging_state: bytes | None) -> Outcome:
    return [], None


class FakeSession:
    """``execute_async`` of a driver ``Session``; ``refuse`` makes it raise at once (e.g. no host)."""

    def __init__(self, answer: Answer | None = no_rows) -> None:
        self.answer = answer  # None: the test replies to each request itself
        self.refuse: Callable[[Any], BaseException | None] = lambda statement: None
        self.sent: list[FakeResponse] = []
        self.outstanding = 0
        self.max_outstanding = 0
        self.gate = threading.Event()
        self.gate.set()
        self._lock = threading.Lock()
        self._replies: queue.Queue[tuple[FakeResponse, Outcome | None] | None] = queue.Queue()
        self._io = threading.Thread(target=self._run, name="fake-driver-io", daemon=True)
        self._io.start()

    def execute_async(self, statement: Any, **kwargs: Any) -> FakeResponse:
        refused = self.refuse(statement)
        if refused is not None:
            raise refused
        response = FakeResponse(statement, kwargs)
        with self._lock:
            self.outstanding += 1
            self.max_outstanding = max(self.max_outstanding, self.outstanding)
        self.sent.append(response)
        if self.answer is not None:
            self._replies.put((response, None))  # the IO thread asks ``answer``
        return response

    def reply(self, response: FakeResponse, outcome: Outcome = ([], None)) -> None:
        """Answer ``response`` from the IO thread (soon, not before this returns)."""
        self._replies.put((response, outcome))

    def wait_answered(self) -> None:
        """Block until the IO thread delivered every answer given so far (fail after 5 s)."""
        deadline = time.monotonic() + 5.0
        while self._replies.unfinished_tasks:
            assert time.monotonic() < deadline, "the fake driver's IO thread is stuck"
            time.sleep(0.001)

    def stop(self) -> None:
        self.gate.set()
        self._replies.put(None)
        self._io.join(5)

    def _run(self) -> None:
        while (item := self._replies.get()) is not None:
            self.gate.wait()
            response, outcome = item
            if outcome is None:
                assert self.answer is not None
                outcome = self.answer(response.statement, response.kwargs.get("paging_state"))
            with self._lock:
                self.outstanding -= 1
            try:
                response.complete(outcome)
            finally:
                self._replies.task_done()
