"""The server's connections to Cassandra and Kafka, made on first use and remade after a failure.

``fanout serve`` starts even when a backend is down: ``/healthz`` answers, and every request that
needs the missing backend gets a 503 problem (with ``Retry-After``) until it is back. A failed
connection is retried by the next request that needs it, at most once per ``_RECONNECT_SECONDS``;
every call to a backend is bounded by ``settings.http_backend_timeout_seconds``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Generic, Protocol, TypeVar

from aiokafka.errors import KafkaError

from fanout.codec import ActivityEvent
from fanout.core import Fanout
from fanout.errors import StoreError
from fanout.kafka import KafkaClients
from fanout.producer import Delivery, Producer
from fanout.settings import Settings
from fanout.store import Store

from .problems import Problem, unavailable

log = logging.getLogger("fanout.http")
T = TypeVar("T")
_RECONNECT_SECONDS: Final = 1.0
_PUBLISH_TOPICS: Final = ("activities", "follows")


class Publisher(Protocol):
    """What the API produces with (``fanout.producer.Producer``; tests may pass a twin)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def send_activity(self, event: ActivityEvent, /) -> Delivery: ...

    async def send_follow(self, follower: str, followee: str, op: str = "follow", *, time: Any = None) -> Delivery:
        ...


class _Lazy(Generic[T]):
    """One connection, made on first use by ``connect`` in a task of its own: a request waits for
    it at most ``timeout`` seconds (a 503 after that), but never cancels it, so a slow connect
    finishes for the next request instead of starting over. A failure is remembered briefly."""

    def __init__(self, connect: Callable[[], Awaitable[T]], backend: str, timeout: float) -> None:
        self._connect = connect
        self._backend = backend
        self._timeout = timeout
        self._task: asyncio.Future[T] | None = None
        self._failed_at = 0.0

    @property
    def value(self) -> T | None:
        """The connection, if one is made."""
        task = self._task
        if task is None or not task.done() or task.cancelled() or task.exception() is not None:
            return None
        return task.result()

    async def get(self) -> T:
        task = self._task
        if task is None or (task.done() and (task.cancelled() or task.exception() is not None)
                            and time.monotonic() - self._failed_at >= _RECONNECT_SECONDS):
            task = self._task = asyncio.ensure_future(self._connect())
            task.add_done_callback(self._settled)
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._timeout)
        except TimeoutError:
            raise unavailable(self._backend, f"still connecting to {self._backend} after {self._timeout:g} s"
                              ) from None
        except Exception as exc:  # whatever stops a connection (refused, TLS, auth, no schema) is a 503
            raise unavailable(self._backend, f"cannot connect to {self._backend}: {_describe(exc)}") from exc

    def _settled(self, task: asyncio.Future[T]) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._failed_at = time.monotonic()
            log.warning("cannot connect to %s: %s", self._backend, _describe(exc))

    def reset(self) -> T | None:
        """Forget the connection (and stop a connect in progress); return it if there was one."""
        value, task, self._task = self.value, self._task, None
        if task is not None and not task.done():
            task.cancel()
        return value


class Backends:
    """Cassandra (a ``Fanout`` on the store) and Kafka (a publisher and an admin client)."""

    def __init__(self, settings: Settings, *, store: Store | None = None, publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.timeout = settings.http_backend_timeout_seconds
        self._fanout = _Lazy(lambda: self._open_fanout(store), "Cassandra", self.timeout)
        self._publisher = _Lazy(lambda: self._open_publisher(publisher), "Kafka", self.timeout)
        self._admin: _Lazy[Any] = _Lazy(self._open_admin, "Kafka", self.timeout)

    async def _open_fanout(self, store: Store | None) -> Fanout:
        if store is None:
            from fanout.cassandra import CassandraStore

            store = await CassandraStore.connect(self.settings)
        return Fanout(store, self.settings)

    async def _open_publisher(self, publisher: Publisher | None) -> Publisher:
        publisher = publisher or Producer(self.settings)
        await publisher.start()
        return publisher

    async def _open_admin(self) -> Any:
        admin = KafkaClients(self.settings).admin_client("fanout-http")
        try:
            await admin.start()
        except BaseException:
            await admin.close()
            raise
        return admin

    async def fanout(self) -> Fanout:
        return await self._fanout.get()

    async def call_store(self, call: Callable[[Fanout], Awaitable[T]]) -> T:
        """Run ``call(fanout)``: a store that fails or does not answer in time is a 503."""
        fanout = await self.fanout()
        try:
            return await asyncio.wait_for(call(fanout), self.timeout)
        except TimeoutError:
            raise unavailable("Cassandra", f"Cassandra did not answer within {self.timeout:g} s") from None
        except StoreError as exc:
            raise unavailable("Cassandra", str(exc)) from exc

    async def publish(self, send: Callable[[Publisher], Awaitable[Delivery]]) -> Delivery:
        """Run ``send(publisher)`` until the broker acknowledges; a broker that fails or does not
        acknowledge in time is a 503 (the event may still land: retry with the same ``id``)."""
        publisher = await self._publisher.get()
        task = asyncio.ensure_future(send(publisher))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self.timeout)
        except TimeoutError:
            task.add_done_callback(_consume)
            raise unavailable(
                "Kafka",
                f"Kafka did not acknowledge within {self.timeout:g} s; the event may still be stored: "
                "retry with the same `id` (a retry without one may add it twice)",
            ) from None
        except KafkaError as exc:
            raise unavailable("Kafka", f"Kafka refused the event: {_describe(exc)}") from exc

    async def ready(self) -> dict[str, str]:
        """Ask each backend a question; ``{"cassandra": "ok"|reason, "kafka": "ok"|reason}``."""
        cassandra, kafka = await asyncio.gather(self._ask_cassandra(), self._ask_kafka())
        return {"cassandra": cassandra, "kafka": kafka}

    async def _ask_cassandra(self) -> str:
        try:
            await self.call_store(lambda fanout: fanout.store.last_active("fanout-readyz"))
        except Problem as exc:
            return exc.doc.detail
        return "ok"

    async def _ask_kafka(self) -> str:
        try:
            admin = await self._admin.get()
            topics = set(await asyncio.wait_for(admin.list_topics(), self.timeout))
        except Problem as exc:
            return exc.doc.detail
        except (TimeoutError, OSError, KafkaError) as exc:
            stale = self._admin.reset()
            if stale is not None:
                await _quietly(stale.close())
            return f"Kafka did not answer: {_describe(exc)}"
        missing = [self.settings.topic(t) for t in _PUBLISH_TOPICS if self.settings.topic(t) not in topics]
        if missing:
            return f"missing Kafka topic(s) {', '.join(missing)}: run `fanout topics create`"
        return "ok"

    async def close(self) -> None:
        """Flush and stop the publisher, close the admin client and the store (safe twice)."""
        publisher, admin, fanout = self._publisher.reset(), self._admin.reset(), self._fanout.reset()
        if publisher is not None:
            await _quietly(publisher.stop())
        if admin is not None:
            await _quietly(admin.close())
        if fanout is not None:
            await _quietly(fanout.close())


def _describe(exc: BaseException) -> str:
    name, text = type(exc).__name__, str(exc)
    return text if text.startswith(name) else f"{name}: {text}" if text else name


def _consume(task: asyncio.Future[Any]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.warning("a produce that timed out failed later: %s", _describe(task.exception()))  # type: ignore[arg-type]


async def _quietly(closing: Awaitable[Any]) -> None:
    try:
        await closing
    except Exception as exc:  # closing is best effort: the process is going away
        log.warning("while closing: %s", _describe(exc))
