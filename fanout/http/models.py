"""The JSON documents the HTTP API answers with (their JSON Schemas feed ``/openapi.json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from fanout.activity import Activity, from_micros
from fanout.codec import ActivityEvent, FollowEvent
from fanout.tracing import Delivery


class ActivityDoc(msgspec.Struct, omit_defaults=True, kw_only=True):
    """An activity as in ``schemas/activity.v1.json``, with its ``id`` and ``time``."""

    id: str
    actor: str
    verb: str
    object: str
    target: str | None = None
    time: datetime
    extra: dict[str, Any] | None = None


class FeedPage(msgspec.Struct, kw_only=True):
    """A page of a feed, newest first; ``next`` is the cursor of the following page (null: none)."""

    items: list[ActivityDoc]
    next: str | None


class UserPage(msgspec.Struct, kw_only=True):
    """A page of user ids in ascending order, with the total ``count`` (null: too many to count
    within the time limit)."""

    items: list[str]
    count: int | None
    next: str | None


class Accepted(msgspec.Struct, omit_defaults=True, kw_only=True):
    """Where the broker stored a produced event; ``id`` is the activity id (given or derived)."""

    id: str | None = None
    topic: str
    partition: int
    offset: int


class Health(msgspec.Struct, kw_only=True):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


def activity_doc(activity: Activity) -> ActivityDoc:
    return ActivityDoc(
        id=activity.id,
        actor=activity.actor,
        verb=activity.verb,
        object=activity.object,
        target=activity.target,
        time=from_micros(activity.ts),
        extra=activity.extra,
    )


#: Request bodies (validated by ``fanout.codec``) and responses, for the OpenAPI document.
REQUEST_TYPES: tuple[type[msgspec.Struct], ...] = (ActivityEvent, FollowEvent)
RESPONSE_TYPES: tuple[type[msgspec.Struct], ...] = (ActivityDoc, FeedPage, UserPage, Accepted, Health, Delivery)

_encoder = msgspec.json.Encoder()


def encode(doc: msgspec.Struct) -> bytes:
    return _encoder.encode(doc)
