"""Producing activity and follow events to the pipeline's Kafka topics.

    async with Producer(settings) as producer:
        await producer.send_activity(actor="42", verb="pin", object="7", target="board:3")
        await producer.send_follow("7", "42")

    with SyncProducer(settings) as producer:          # for threads / non-async services
        producer.send_activity({"actor": "42", "verb": "pin", "object": "7"})

Every event is validated with the wire codec before it is sent (``InvalidEvent`` on a bad
one, nothing sent), encoded as the JSON of ``schemas/*.v1.json`` and keyed by its actor
(activities) or follower (follows), so one user's events stay in order. ``start`` fails with
``MissingTopics`` ("run `fanout topics create`") when the topics do not exist: a broker that
auto-creates topics would otherwise make one-partition topics with its default retention.

``send_*`` wait for the broker's acknowledgement and return where the event was stored (for an
activity, also the id of the activity it adds or removes: given, or derived from its content and
time, the record's timestamp when it has none, exactly as the planner derives it); ``queue_*``
only enqueue (fast, for bulk loads) and ``flush()`` waits for everything queued.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

from .codec import ActivityEvent, activity_event, activity_id, check_event_time, encode, follow_event
from .kafka import Acks, KafkaClients, require_topics
from .settings import Settings

T = TypeVar("T")


class Delivery(NamedTuple):
    topic: str
    partition: int
    offset: int
    activity_id: str | None = None  # the activity an activity event adds or removes (None: a follow)


class Producer:
    """An asyncio producer of activity and follow events (``async with Producer() as p``)."""

    def __init__(self, settings: Settings | None = None, **kafka_options: Any) -> None:
        self.settings = settings or Settings()
        self.activities_topic = self.settings.topic("activities")
        self.follows_topic = self.settings.topic("follows")
        self._options = kafka_options
        self._kafka: Any = None
        self._acks = Acks()

    async def start(self) -> None:
        if self._kafka is None:
            clients = KafkaClients(self.settings)
            await require_topics(clients, [self.activities_topic, self.follows_topic])
            self._kafka = clients.producer("fanout-producer", **self._options)
            try:
                await self._kafka.start()
            except BaseException:
                await self._kafka.stop()
                self._kafka = None
                raise

    async def stop(self) -> None:
        """Flush what was queued, then close."""
        if self._kafka is None:
            return
        try:
            await self.flush()
        finally:
            kafka, self._kafka = self._kafka, None
            await kafka.stop()

    async def __aenter__(self) -> Producer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # events ----------------------------------------------------------------------------
    async def send_activity(
        self, event: ActivityEvent | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Delivery:
        """Validate and send an activity event; return where the broker stored it and the
        activity's id."""
        checked = self._check_activity(event, **fields)
        meta = await (await self._send(self.activities_topic, checked.actor, encode(checked)))
        accepted = meta.timestamp * 1000 if meta.timestamp is not None and meta.timestamp >= 0 else 0
        return Delivery(meta.topic, meta.partition, meta.offset, activity_id(checked, accepted))

    async def send_follow(
        self, follower: str, followee: str, op: str = "follow", *, time: datetime | str | None = None
    ) -> Delivery:
        """Validate and send a follow (``op="follow"``) or unfollow (``op="unfollow"``) event."""
        return await _delivered(await self.queue_follow(follower, followee, op, time=time))

    async def queue_activity(
        self, event: ActivityEvent | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> asyncio.Future[Any]:
        """Validate and enqueue an activity event; ``flush()`` (or the future) waits for it."""
        checked = self._check_activity(event, **fields)
        return await self._send(self.activities_topic, checked.actor, encode(checked))

    def _check_activity(
        self, event: ActivityEvent | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> ActivityEvent:
        """The event as it will be sent, validated by the wire codec (``InvalidEvent`` if not),
        its time checked against the clock (the record timestamp will be about now)."""
        return check_event_time(activity_event(event, max_bytes=self.settings.max_event_bytes, **fields),
                                self.settings)

    async def queue_follow(
        self, follower: str, followee: str, op: str = "follow", *, time: datetime | str | None = None
    ) -> asyncio.Future[Any]:
        checked = check_event_time(
            follow_event(follower, followee, op, time=time, max_bytes=self.settings.max_event_bytes), self.settings)
        return await self._send(self.follows_topic, checked.follower, encode(checked))

    async def flush(self) -> None:
        """Wait until every queued event is acknowledged; raise the first failure."""
        await self._acks.flush()

    async def _send(self, topic: str, key: str, value: bytes) -> asyncio.Future[Any]:
        if self._kafka is None:
            raise RuntimeError("the producer is not started: use `async with Producer(...)` or start()")
        future: asyncio.Future[Any] = await self._kafka.send(topic, value=value, key=key.encode())
        self._acks.add(future)
        return future


async def _delivered(future: asyncio.Future[Any]) -> Delivery:
    meta = await future
    return Delivery(meta.topic, meta.partition, meta.offset)


class SyncProducer:
    """A blocking ``Producer`` for non-async code: its own event loop runs in a daemon thread.

        with SyncProducer(settings) as producer:
            producer.send_activity(actor="42", verb="pin", object="7")
    """

    def __init__(
        self, settings: Settings | None = None, *, timeout: float = 30.0, **kafka_options: Any
    ) -> None:
        self.timeout = timeout
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fanout-producer", daemon=True)
        self._thread.start()
        self._producer = Producer(settings, **kafka_options)
        self._closed = False
        try:
            self._call(self._producer.start())
        except BaseException:
            self._shutdown_loop()
            raise

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the producer is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(self.timeout)

    def send_activity(
        self, event: ActivityEvent | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> Delivery:
        return self._call(self._producer.send_activity(event, **fields))

    def send_follow(
        self, follower: str, followee: str, op: str = "follow", *, time: datetime | str | None = None
    ) -> Delivery:
        return self._call(self._producer.send_follow(follower, followee, op, time=time))

    def queue_activity(
        self, event: ActivityEvent | Mapping[str, Any] | None = None, /, **fields: Any
    ) -> None:
        self._call(self._producer.queue_activity(event, **fields))

    def queue_follow(
        self, follower: str, followee: str, op: str = "follow", *, time: datetime | str | None = None
    ) -> None:
        self._call(self._producer.queue_follow(follower, followee, op, time=time))

    def flush(self) -> None:
        self._call(self._producer.flush())

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call(self._producer.stop())
        finally:
            self._closed = True
            self._shutdown_loop()

    def _shutdown_loop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=self.timeout)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> SyncProducer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
