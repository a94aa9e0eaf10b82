"""``fanout.cassandra.bridge.DriverBridge`` against a fake driver session (``fake_cassandra_driver``): no server."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar
from unittest.mock import Mock

import pytest
from cassandra import ConsistencyLevel, InvalidRequest, OperationTimedOut, WriteTimeout
from cassandra.cluster import NoHostAvailable

from fanout import Activity, Settings, StoreError, TimelineWrite
from fanout.cassandra import CassandraStore
from fanout.cassandra.bridge import READ_PAGE, DriverBridge
from tests.unit.fake_cassandra_driver import Answer, FakeResponse, FakeResultSet, FakeSession, FakeStatement, no_rows

T = TypeVar("T")


@pytest.fixture
def sessions() -> Iterator[Callable[..., FakeSession]]:
    made: list[FakeSession] = []

    def make(answer: Answer | None = no_rows) -> FakeSession:
        made.append(FakeSession(answer))
        return made[-1]

    yield make
    for session in made:
        session.stop()


async def soon(awaitable: Awaitable[T]) -> T:
    """The result of ``awaitable``, failing rather than waiting forever for an answer that never comes."""
    return await asyncio.wait_for(awaitable, 5)


async def handled(session: FakeSession) -> None:
    """Let the IO thread deliver every answer given so far, and the loop run what they woke."""
    await asyncio.to_thread(session.wait_answered)
    await asyncio.sleep(0.02)


async def until(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 5.0
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(0.001)


def write_timeout() -> WriteTimeout:
    return WriteTimeout(
        "slow", consistency=ConsistencyLevel.ONE, required_responses=1, received_responses=0, write_type=0
    )


# callbacks from a foreign thread (first: a bridge that breaks this can hang the tests after it) ---
async def test_answers_from_the_driver_thread_settle_on_the_loop_thread(
    sessions: Callable[..., FakeSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    loop = asyncio.get_running_loop()
    loop_thread = threading.get_ident()
    foreign: list[str] = []  # loop.call_soon (not thread-safe) from another thread: a lost wake-up
    call_soon = loop.call_soon

    def checked(callback: Callable[..., object], *args: Any, **kwargs: Any) -> asyncio.Handle:
        if threading.get_ident() != loop_thread:
            foreign.append(repr(callback))
        return call_soon(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon", checked)
    session = sessions(lambda statement, state: ([threading.get_ident()], None))
    bridge = DriverBridge(session, 2)
    work = asyncio.gather(bridge.execute("q", what="read"), bridge.run_all(["a", "b", "c"], "write"))
    await until(work.done)  # polls, so a lost wake-up fails the assertion below rather than hanging
    result, _ = work.result()
    assert foreign == []
    assert result.current_rows != [loop_thread]  # answered on the IO thread ...
    assert all(r.answered_on not in (None, loop_thread) for r in session.sent)  # ... every time


# success ---------------------------------------------------------------------------------------
async def test_execute_returns_the_result_and_passes_paging_state_and_timeout(
    sessions: Callable[..., FakeSession],
) -> None:
    session = sessions(lambda statement, state: ([("row", statement, state)], b"next"))
    bridge = DriverBridge(session, 4)
    result = await soon(bridge.execute("q", paging_state=b"here", request_timeout=3.0, what="read"))
    assert result == FakeResultSet([("row", "q", b"here")], b"next")
    assert session.sent[0].kwargs == {"paging_state": b"here", "timeout": 3.0}
    await soon(bridge.execute("q", what="read"))
    assert session.sent[1].kwargs == {}  # the driver's own defaults


async def test_fetch_all_follows_the_pages(sessions: Callable[..., FakeSession]) -> None:
    pages = {None: ([1, 2], b"p2"), b"p2": ([3], b"p3"), b"p3": ([4, 5], None)}
    session = sessions(lambda statement, state: pages[state])
    bridge = DriverBridge(session, 4)
    statement = FakeStatement("SELECT")
    assert await soon(bridge.fetch_all(statement, "read")) == [1, 2, 3, 4, 5]
    assert statement.fetch_size == READ_PAGE
    assert [r.kwargs.get("paging_state") for r in session.sent] == [None, b"p2", b"p3"]
    assert await soon(bridge.page(statement, b"p2", "read")) == ([3], b"p3")


async def test_run_all_sends_each_request_once_and_returns_when_all_are_acknowledged(
    sessions: Callable[..., FakeSession],
) -> None:
    session = sessions(answer=None)
    bridge = DriverBridge(session, 8)
    task = asyncio.create_task(bridge.run_all((f"w{i}" for i in range(5)), "timeline write"))
    await until(lambda: len(session.sent) == 5)
    for response in session.sent[:4]:
        session.reply(response)
    await handled(session)
    assert not task.done()  # one is still unacknowledged
    session.reply(session.sent[4])
    await soon(task)
    assert [r.statement for r in session.sent] == [f"w{i}" for i in range(5)]
    await soon(bridge.run_all([], "nothing"))  # nothing to send: returns at once


async def test_an_answer_given_before_the_callbacks_are_added_still_arrives() -> None:
    class AnsweredSession:
        def execute_async(self, statement: Any, **kwargs: Any) -> FakeResponse:
            response = FakeResponse(statement, kwargs)
            response.complete(([statement], None))
            return response

    bridge = DriverBridge(AnsweredSession(), 2)
    assert (await soon(bridge.execute("q", what="read"))).current_rows == ["q"]
    await soon(bridge.run_all(["a", "b", "c"], "write"))


# failures --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("exc", "retriable"),
    [(OperationTimedOut("client timeout"), True), (write_timeout(), True),
     (InvalidRequest("unconfigured table timeline"), False)],
)
async def test_a_failed_request_raises_store_error_with_the_retriable_flag(
    sessions: Callable[..., FakeSession], exc: BaseException, retriable: bool
) -> None:
    session = sessions(lambda statement, state: exc)
    bridge = DriverBridge(session, 2)
    with pytest.raises(StoreError, match=f"Cassandra read failed: {type(exc).__name__}") as info:
        await soon(bridge.execute("q", what="read"))
    assert info.value.retriable is retriable
    assert info.value.__cause__ is exc
    assert ("fanout migrate" in str(info.value)) is not retriable
    with pytest.raises(StoreError) as info:
        await soon(bridge.run_all(["w"], "timeline write"))
    assert info.value.retriable is retriable
    assert "timeline write (1 request(s) failed)" in str(info.value)
    assert bridge.in_flight._value == 2  # every slot released


async def test_a_request_the_driver_refuses_raises_store_error_and_frees_its_slot(
    sessions: Callable[..., FakeSession],
) -> None:
    session = sessions()
    session.refuse = lambda statement: NoHostAvailable("none", {}) if statement == "w2" else None
    bridge = DriverBridge(session, 3)
    with pytest.raises(StoreError, match="read failed: NoHostAvailable") as info:
        await soon(bridge.execute("w2", what="read"))
    assert info.value.retriable
    with pytest.raises(StoreError, match=r"write \(1 request\(s\) failed\)"):
        await soon(bridge.run_all((f"w{i}" for i in range(10)), "write"))
    assert [r.statement for r in session.sent] == ["w0", "w1"]  # stopped at the refused one
    assert session.outstanding == 0  # ... after the two sent before it were answered
    assert bridge.in_flight._value == 3


async def test_run_all_stops_sending_on_the_first_failure_and_waits_for_the_outstanding(
    sessions: Callable[..., FakeSession],
) -> None:
    session = sessions(answer=None)
    bridge = DriverBridge(session, 3)
    task = asyncio.create_task(bridge.run_all((f"w{i}" for i in range(50)), "timeline write"))
    await until(lambda: len(session.sent) == 3)
    timeout = write_timeout()
    session.reply(session.sent[1], timeout)
    await handled(session)
    sent_after_failure = len(session.sent)  # at most the one already waiting for the freed slot
    assert sent_after_failure <= 4
    outstanding = [r for r in session.sent if r is not session.sent[1]]
    for response in outstanding[:-1]:
        session.reply(response, InvalidRequest("later failure") if response is outstanding[0] else ([], None))
        await handled(session)
        assert not task.done()  # still waiting for the last outstanding request
    session.reply(outstanding[-1])
    with pytest.raises(StoreError) as info:
        await soon(task)
    assert info.value.__cause__ is timeout  # the first failure decides
    assert info.value.retriable
    assert "(2 request(s) failed)" in str(info.value)
    assert len(session.sent) == sent_after_failure  # nothing sent after the failure was seen
    assert session.outstanding == 0
    assert bridge.in_flight._value == 3


# the in-flight bound ---------------------------------------------------------------------------
async def test_never_more_than_max_in_flight_outstanding(sessions: Callable[..., FakeSession]) -> None:
    session = sessions()
    session.gate.clear()  # hold every answer back
    bridge = DriverBridge(session, 4)
    work = asyncio.gather(
        bridge.run_all((f"w{i}" for i in range(40)), "write"),
        *(bridge.execute(f"r{i}", what="read") for i in range(10)),
    )
    await until(lambda: len(session.sent) == 4)
    await asyncio.sleep(0.05)
    assert len(session.sent) == 4  # every slot taken: nothing more is sent
    session.gate.set()
    await soon(work)
    assert len(session.sent) == 50
    assert session.max_outstanding == 4
    assert bridge.in_flight._value == 4


# one wake-up per burst -------------------------------------------------------------------------
async def test_a_burst_of_answers_wakes_the_loop_once(
    sessions: Callable[..., FakeSession], monkeypatch: pytest.MonkeyPatch
) -> None:
    session = sessions(answer=None)
    bridge = DriverBridge(session, 100)
    task = asyncio.create_task(bridge.run_all((f"w{i}" for i in range(100)), "write"))
    await until(lambda: len(session.sent) == 100)
    loop = asyncio.get_running_loop()
    wakeups: list[str] = []
    call_soon_threadsafe = loop.call_soon_threadsafe

    def counting(callback: Callable[..., object], *args: Any, **kwargs: Any) -> asyncio.Handle:
        wakeups.append(getattr(callback, "__name__", "?"))
        return call_soon_threadsafe(callback, *args, **kwargs)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counting)
    for response in session.sent:
        session.reply(response)
    session.wait_answered()  # blocks the loop on purpose: all 100 answers arrive meanwhile
    await soon(task)
    assert wakeups.count("_drain") == 1


# closed ----------------------------------------------------------------------------------------
async def test_a_closed_bridge_sends_nothing(sessions: Callable[..., FakeSession]) -> None:
    session = sessions()
    bridge = DriverBridge(session, 2)
    bridge.close()
    for attempt in (
        bridge.execute("q", what="read"),
        bridge.fetch_all(FakeStatement("q"), "read"),
        bridge.run_all(["w"], "write"),
    ):
        with pytest.raises(StoreError, match="closed") as info:
            await soon(attempt)
        assert not info.value.retriable
    assert session.sent == []


async def test_a_closed_store_refuses_every_call(sessions: Callable[..., FakeSession]) -> None:
    session, cluster = sessions(), Mock()
    store = CassandraStore(cluster, session, Settings())
    assert not store.closed
    await store.close()
    await store.close()  # twice is fine
    assert store.closed
    cluster.shutdown.assert_called_once_with()
    activity = Activity(id="a1", actor="u", verb="pin", object="o", ts=1)
    for attempt in (
        store.read("timeline:u", limit=1),
        store.apply([TimelineWrite("timeline:u", activity, 1)]),
        store.set_follow("u", "v", True, 1),
    ):
        with pytest.raises(StoreError, match="closed") as info:
            await soon(attempt)
        assert not info.value.retriable
    assert session.sent == []
