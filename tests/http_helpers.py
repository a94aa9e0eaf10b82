"""Helpers of the HTTP API tests: a real uvicorn server on a free port, a real httpx client, and
a publisher twin for the tests that need no broker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette

from fanout.codec import ActivityEvent, FollowEvent, follow_event
from fanout.producer import Delivery

PROBLEM = "application/problem+json"


@contextlib.asynccontextmanager
async def served(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    """Run ``app`` on uvicorn (in this event loop) on a free port; yield a client of it."""
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets (else Nagle adds ~40 ms per request)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    task = asyncio.ensure_future(server.serve(sockets=[sock]))
    try:
        for _ in range(500):
            if server.started or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        assert server.started, "uvicorn did not start within 5 s"
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=30.0) as client:
            yield client
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 30.0)
        sock.close()


class TcpProxy:
    """Forwards a local port to ``host:port``; ``stop()`` cuts every connection and refuses new
    ones (a server that went away), ``start()`` brings it back on the same port."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, upstream_writer))
        await asyncio.gather(self._pipe(reader, upstream_writer), self._pipe(upstream_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


async def walk(client: httpx.AsyncClient, path: str, limit: int) -> list[dict[str, Any]]:
    """Every page of a list, following ``next`` from the first page (each at most ``limit`` long)."""
    pages: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(100_000):
        query: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=query)
        assert response.status_code == 200, response.text
        page: dict[str, Any] = response.json()
        assert len(page["items"]) <= limit, page
        pages.append(page)
        cursor = page["next"]
        if cursor is None:
            return pages
    raise AssertionError(f"walking {path} did not end")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PublisherTwin:
    """Records what the API would produce; answers like a broker with one partition."""

    def __init__(self, *, fail: BaseException | None = None, hang: bool = False, start_seconds: float = 0.0
                 ) -> None:
        self.activities: list[ActivityEvent] = []
        self.follows: list[FollowEvent] = []
        self.fail = fail
        self.hang = hang
        self.start_seconds = start_seconds
        self.starts = 0
        self.started = self.stopped = False

    async def start(self) -> None:
        self.starts += 1
        await asyncio.sleep(self.start_seconds)
        if self.fail is not None:
            raise self.fail
        self.started = True

    async def stop(self) -> None:
        self.stopped = True

    async def send_activity(self, event: ActivityEvent, /) -> Delivery:
        await self._wait()
        self.activities.append(event)
        return Delivery("fanout.activities", 0, len(self.activities) - 1)

    async def send_follow(self, follower: str, followee: str, op: str = "follow", *, time: Any = None) -> Delivery:
        await self._wait()
        self.follows.append(follow_event(follower, followee, op, time=time))
        return Delivery("fanout.follows", 0, len(self.follows) - 1)

    async def _wait(self) -> None:
        if self.hang:
            await asyncio.Event().wait()


def assert_problem(response: httpx.Response, status: int, field: str | None = None) -> dict[str, Any]:
    """``response`` is a problem+json of ``status`` naming ``field``; return its document."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM, response.headers
    doc: dict[str, Any] = response.json()
    assert doc["status"] == status and doc["type"].startswith("https://fanout.dev/problems/"), doc
    assert doc["title"] and doc["detail"], doc
    if field is not None:
        assert doc.get("field") == field, doc
        assert doc.get("rule"), doc
    return doc
