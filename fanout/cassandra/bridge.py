"""Driver requests awaited from asyncio, with a bound on how many are in flight.

The driver (``cassandra-driver``) is not asyncio: ``session.execute_async`` returns a
``ResponseFuture`` that calls ``add_callbacks(ok, err)`` on the driver's IO thread when the node
answers. ``DriverBridge`` turns that into awaitables:

* ``execute``: one request, holding one of ``max_in_flight`` slots (an ``asyncio.Semaphore``)
  until it is answered; returns the driver's ``ResultSet``.
* ``page`` / ``fetch_all``: one page of a query / every page, following ``paging_state``.
* ``run_all``: many requests sharing the same slots; returns when every one is acknowledged, and
  on the first failure stops sending, waits for the outstanding ones, then raises.

Every failure surfaces as ``StoreError`` (``errors.store_error``: timeouts, unavailability and
lost connections are ``retriable``); a request after ``close()`` raises a non-retriable one.
Nothing here knows about timelines: any statement the session accepts goes through.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Final

from .errors import closed_error, store_error

READ_PAGE: Final = 5000  # rows a page of ``fetch_all`` asks for


class DriverBridge:
    """Awaitable requests on a driver ``Session`` with at most ``max_in_flight`` outstanding."""

    def __init__(self, session: Any, max_in_flight: int) -> None:
        self.session = session
        self.in_flight = asyncio.Semaphore(max_in_flight)
        self.closed = False
        self._loop_bridge: _LoopBridge | None = None

    def close(self) -> None:
        """Refuse every later request (the caller shuts the driver down)."""
        self.closed = True

    async def execute(
        self,
        statement: Any,
        *,
        paging_state: bytes | None = None,
        request_timeout: float | None = None,
        what: str,
    ) -> Any:
        """Run one request (holding an in-flight slot); return the driver's ResultSet.

        ``what`` names the operation in the error message.
        """
        if self.closed:
            raise closed_error()
        loop = asyncio.get_running_loop()
        async with self.in_flight:
            done: asyncio.Future[None] = loop.create_future()

            def settle(exc: BaseException | None) -> None:
                if done.done():
                    return
                if exc is None:
                    done.set_result(None)
                else:
                    done.set_exception(exc)

            try:
                response = self._submit(statement, paging_state, request_timeout)
            except Exception as exc:
                raise store_error(exc, what) from exc
            bridge = self._bridge_for(loop)
            response.add_callbacks(lambda _rows: bridge.post(settle, None), lambda exc: bridge.post(settle, exc))
            try:
                await done
            except Exception as exc:
                raise store_error(exc, what) from exc
        return response.result()  # already complete: does not block

    async def page(self, statement: Any, paging_state: bytes | None, what: str) -> tuple[list[Any], bytes | None]:
        """One page of a query's rows (from ``paging_state``, None for the first), and the state of the next
        page (None after the last). ``statement.fetch_size`` sets the page size."""
        result = await self.execute(statement, paging_state=paging_state, what=what)
        return list(result.current_rows), result.paging_state

    async def fetch_all(self, statement: Any, what: str) -> list[Any]:
        """Every row of a query, page by page (``LIMIT`` bounds the reads that need it)."""
        statement.fetch_size = READ_PAGE
        rows, paging_state = await self.page(statement, None, what)
        while paging_state is not None:
            more, paging_state = await self.page(statement, paging_state, what)
            rows.extend(more)
        return rows

    async def run_all(self, requests: Iterable[Any], what: str, *, limit: int | None = None) -> None:
        """Send every request with at most ``max_in_flight`` outstanding (and at most ``limit`` of
        this call's); return when all are acknowledged; on the first failure stop sending, wait
        for the rest, raise StoreError."""
        if self.closed:
            raise closed_error()
        loop = asyncio.get_running_loop()
        bridge = self._bridge_for(loop)
        all_done: asyncio.Future[None] = loop.create_future()
        pending = 0
        submitting = True
        errors: list[BaseException] = []
        sem = self.in_flight
        mine = asyncio.Semaphore(limit) if limit is not None else None

        def finish(exc: BaseException | None) -> None:
            nonlocal pending
            pending -= 1
            sem.release()
            if mine is not None:
                mine.release()
            if exc is not None:
                errors.append(exc)
            if pending == 0 and not submitting and not all_done.done():
                all_done.set_result(None)

        def ok(_rows: Any) -> None:
            bridge.post(finish, None)

        def failed(exc: BaseException) -> None:
            bridge.post(finish, exc)

        try:
            for request in requests:
                if errors:
                    break
                if mine is not None:
                    await mine.acquire()
                await sem.acquire()
                try:
                    response = self._submit(request, None, None)
                except BaseException:
                    sem.release()
                    if mine is not None:
                        mine.release()
                    raise
                pending += 1
                response.add_callbacks(ok, failed)
        except Exception as exc:
            errors.append(exc)
        finally:
            submitting = False
            if pending == 0 and not all_done.done():
                all_done.set_result(None)
        await all_done
        if errors:
            first = errors[0]
            raise store_error(first, f"{what} ({len(errors)} request(s) failed)") from first

    def _submit(self, statement: Any, paging_state: bytes | None, request_timeout: float | None) -> Any:
        kwargs: dict[str, Any] = {}
        if paging_state is not None:
            kwargs["paging_state"] = paging_state
        if request_timeout is not None:
            kwargs["timeout"] = request_timeout
        return self.session.execute_async(statement, **kwargs)

    def _bridge_for(self, loop: asyncio.AbstractEventLoop) -> _LoopBridge:
        bridge = self._loop_bridge
        if bridge is None or bridge.loop is not loop:
            bridge = self._loop_bridge = _LoopBridge(loop)
        return bridge


class _LoopBridge:
    """Hands driver callbacks (run on the driver's IO thread) to the event loop.

    One ``call_soon_threadsafe`` wakes the loop per burst of completions instead of one per
    request: under load many requests complete between two turns of the loop.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._queue: deque[tuple[Callable[[Any], None], Any]] = deque()
        self._scheduled = False

    def post(self, fn: Callable[[Any], None], arg: Any) -> None:
        self._queue.append((fn, arg))  # deque.append is atomic
        if not self._scheduled:
            self._scheduled = True
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody waits any more
                self.loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        self._scheduled = False  # reset first: a post racing with this drain schedules another
        queue = self._queue
        while queue:
            fn, arg = queue.popleft()
            fn(arg)
