"""The handlers of the HTTP API, one method per route (``app.py`` wires them).

    GET    /healthz                              the process is up
    GET    /readyz                               Kafka and Cassandra answer (503 when one does not)
    GET    /v1/feeds/{kind}/{user}               a page of a feed, newest first (?limit=&cursor=);
                                                 of groups for an aggregated kind (``groups``)
    GET    /v1/notifications/{user}              a page of notification groups, with the counts
    POST   /v1/notifications/{user}/seen|read    mark groups (or all) seen or read
    POST   /v1/activities                        produce an activity event (202: id, partition, offset)
    DELETE /v1/activities/{id}?actor=            produce its removal
    GET    /v1/activities/{id}/delivery          how far its fanout (and its removal's) got
    POST   /v1/follows                           produce a follow or unfollow event
    GET    /v1/users/{user}/following            whom a user follows, paged, with the count
    GET    /v1/users/{user}/followers            who follows a user, paged, with the count
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from fanout.activity import now_micros
from fanout.codec import (
    ActivityEvent,
    FollowEvent,
    check_event_time,
    decode_activity_event,
    decode_follow_event,
    remove_event,
    removed_id,
    to_activity,
)
from fanout.core import Fanout
from fanout.errors import InvalidEvent
from fanout.marks import Field
from fanout.producer import Delivery
from fanout.settings import Settings
from fanout.store import Key
from fanout.targets import known_kinds

from . import groups, params
from .backends import Backends
from .graph import GraphReader
from .models import Accepted, Health, encode
from .problems import RETRY_AFTER_SECONDS, Problem, invalid_body, too_large
from .reader import FeedReader

JSON = "application/json"
E = TypeVar("E", ActivityEvent, FollowEvent)


class Api:
    def __init__(self, settings: Settings, backends: Backends) -> None:
        self.settings = settings
        self.backends = backends
        self.reader = FeedReader(settings)
        self.graph = GraphReader(settings)
        self.aggregated = tuple(settings.aggregation())
        self.kinds = known_kinds(settings)

    # health ----------------------------------------------------------------------------
    async def healthz(self, request: Request) -> Response:
        params.query(request)
        return _json(Health(status="ok", checks={}))

    async def readyz(self, request: Request) -> Response:
        params.query(request)
        checks = await self.backends.ready()
        ok = all(v == "ok" for v in checks.values())
        response = _json(Health(status="ok" if ok else "unavailable", checks=checks), 200 if ok else 503)
        if not ok:
            response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)  # as every 503 of the API
        return response

    # reading ---------------------------------------------------------------------------
    async def feed(self, request: Request) -> Response:
        kind = params.feed_kind(request, self.kinds)
        user = params.path_id(request, "user")
        query = params.query(request, "limit", "cursor")
        limit = params.limit(query, self.settings.http_max_limit)
        if kind in self.aggregated:
            after_group = params.group_cursor(query)
            return _json(await self.backends.call_store(
                lambda fanout: self._read_groups(fanout, kind, user, limit, after_group)))
        before, served = params.feed_cursor(query)
        page = await self.backends.call_store(
            lambda fanout: self.reader.page(fanout, kind, user, limit, before, served))
        return _json(page)

    async def delivery(self, request: Request) -> Response:
        activity_id = params.path_id(request, "id")
        params.query(request)
        return _json(await self.backends.call_store(lambda fanout: fanout.delivery(activity_id)))
    async def _read_groups(self, fanout: Fanout, kind: str, user: str, limit: int, before: Key | None
                           ) -> groups.GroupPage:
        if kind in self.settings.feed_kinds:
            await self.reader.touch(fanout, user)
        return await groups.group_page(fanout, kind, user, limit, before)

    async def notifications(self, request: Request) -> Response:
        kind = self._notification_kind()
        if str(request.path_params["user"]).endswith(("/seen", "/read")):  # the marks' paths: not a user id
            return _not_allowed(request, "POST")
        user = params.path_id(request, "user")
        query = params.query(request, "limit", "cursor")
        limit = params.limit(query, self.settings.http_max_limit)
        before = params.group_cursor(query)

        async def read(fanout: Fanout) -> groups.NotificationPage:
            await self.reader.touch(fanout, user)  # the owner reads their notifications: active
            return await groups.notification_page(fanout, kind, user, limit, before)

        return _json(await self.backends.call_store(read))

    async def mark_seen(self, request: Request) -> Response:
        return await self._mark(request, "seen")

    async def mark_read(self, request: Request) -> Response:
        return await self._mark(request, "read")

    async def _mark(self, request: Request, field: Field) -> Response:
        kind = self._notification_kind()
        user = params.path_id(request, "user")
        params.query(request)
        wanted = groups.mark_request(await self._body(request))
        return _json(await self.backends.call_store(lambda fanout: groups.mark(fanout, kind, user, field, wanted)))

    def _notification_kind(self) -> str:
        if not self.settings.notification_kinds:
            raise Problem(404, "unknown-feed-kind", "No such feed kind", "no notification kind is configured "
                          "(FANOUT_NOTIFICATION_KINDS)", field="kind", rule="a notification kind")
        return self.settings.notification_kinds[0]

    async def followers(self, request: Request) -> Response:
        user, limit, after = self._user_page(request)
        return _json(await self.backends.call_store(lambda fanout: self.graph.followers(fanout, user, limit, after)))

    async def following(self, request: Request) -> Response:
        user, limit, after = self._user_page(request)
        return _json(await self.backends.call_store(lambda fanout: self.graph.following(fanout, user, limit, after)))

    def _user_page(self, request: Request) -> tuple[str, int, str | None]:
        user = params.path_id(request, "user")
        query = params.query(request, "limit", "cursor")
        return user, params.limit(query, self.settings.http_max_limit), params.user_cursor(query)

    # producing -------------------------------------------------------------------------
    async def post_activity(self, request: Request) -> Response:
        params.query(request)
        event = _decoded(decode_activity_event, await self._body(request), self.settings)
        event, activity_id = _identified(event)
        delivery = await self.backends.publish(lambda p: p.send_activity(event))
        return _accepted(delivery, activity_id)

    async def delete_activity(self, request: Request) -> Response:
        if str(request.path_params["id"]).endswith("/delivery"):  # the trace's path: not an activity id
            return _not_allowed(request, "GET")
        activity_id = params.path_id(request, "id")
        actor = params.required_id(params.query(request, "actor"), "actor")
        try:
            event = remove_event(activity_id, actor=actor, max_bytes=self.settings.max_event_bytes)
        except InvalidEvent as exc:
            raise invalid_body(exc) from None
        delivery = await self.backends.publish(lambda p: p.send_activity(event))
        return _accepted(delivery, activity_id)

    async def post_follow(self, request: Request) -> Response:
        params.query(request)
        event = _decoded(decode_follow_event, await self._body(request), self.settings)
        delivery = await self.backends.publish(
            lambda p: p.send_follow(event.follower, event.followee, event.op, time=event.time)
        )
        return _accepted(delivery, None)

    async def _body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it passes the event size limit."""
        limit = self.settings.max_event_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise too_large(f"the body is {int(declared)} bytes, over the limit of {limit}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large(f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
        return b"".join(chunks)


def _decoded(decode: Callable[..., E], body: bytes, settings: Settings) -> E:
    """The body decoded as the codec does, its time checked as every producer does."""
    try:
        return check_event_time(decode(body, max_bytes=settings.max_event_bytes), settings)
    except InvalidEvent as exc:
        raise invalid_body(exc) from None


def _identified(event: ActivityEvent) -> tuple[ActivityEvent, str]:
    """The event to produce and its activity id: given, or derived from the content and time. An
    add without either gets the accepted time here, so the id it will have can be answered now."""
    try:
        if event.op == "remove":
            return event, removed_id(event)
        if event.id is None and event.time is None:
            event = msgspec.structs.replace(event, time=datetime.now(UTC))
        return event, to_activity(event, now_micros()).id
    except InvalidEvent as exc:
        raise invalid_body(exc) from None


def _accepted(delivery: Delivery, activity_id: str | None) -> Response:
    doc = Accepted(id=activity_id, topic=delivery.topic, partition=delivery.partition, offset=delivery.offset)
    return _json(doc, 202)


def _json(doc: msgspec.Struct, status: int = 200) -> Response:
    return Response(encode(doc), status_code=status, media_type=JSON)


def _not_allowed(request: Request, allow: str) -> Response:
    """405 for a path whose `{...:path}` parameter caught another route's path (``Allow``: its methods)."""
    response = Problem(405, "method-not-allowed", "Method not allowed",
                       f"{request.method} is not allowed on {request.url.path}").response()
    response.headers["Allow"] = allow
    return response
