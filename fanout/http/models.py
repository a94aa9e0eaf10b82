"""The JSON documents the HTTP API answers with (their JSON Schemas feed ``/openapi.json``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from fanout.activity import Activity, from_micros
from fanout.aggregation import Group
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


class GroupDoc(msgspec.Struct, kw_only=True):
    """A group of an aggregated feed: its newest activities (up to the maximum) and counts over all."""

    id: str
    verb: str
    activity_count: int
    actor_count: int
    first_time: datetime
    last_time: datetime
    activities: list[ActivityDoc]


class NotificationDoc(GroupDoc, kw_only=True):
    """A group of a notification feed, with its state."""

    seen: bool
    read: bool


class GroupPage(msgspec.Struct, kw_only=True):
    """Groups newest first (by their newest activity); ``next``: the cursor of the following page."""

    groups: list[GroupDoc]
    next: str | None


class NotificationPage(msgspec.Struct, kw_only=True):
    """Notification groups newest first, and the feed's counts of groups not seen and not read."""

    groups: list[NotificationDoc]
    unseen: int
    unread: int
    next: str | None


class Marked(msgspec.Struct, kw_only=True):
    """The feed's counts after a mark."""

    unseen: int
    unread: int


class MarkRequest(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Which notification groups to mark: ``{"groups": [ids]}`` or ``{"all": true}``; ``up_to``:
    the newest ``last_time`` the user was shown (an activity that landed in a group since keeps it
    unseen; without it a group is marked up to its newest activity when the mark arrives)."""

    groups: Annotated[list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
                      msgspec.Meta(max_length=1000)] | None = None
    all: bool = False
    up_to: Annotated[datetime, msgspec.Meta(
        tz=True, description="the newest `last_time` the user was shown, as it was served")] | None = None


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


def group_doc(group: Group) -> GroupDoc:
    return GroupDoc(**_group_fields(group))


def notification_doc(group: Group, seen: bool, read: bool) -> NotificationDoc:
    return NotificationDoc(**_group_fields(group), seen=seen, read=read)


def _group_fields(g: Group) -> dict[str, Any]:
    return {"id": g.id, "verb": g.verb, "activity_count": g.activity_count, "actor_count": g.actor_count,
            "first_time": from_micros(g.first_ts), "last_time": from_micros(g.last_ts),
            "activities": [activity_doc(a) for a in g.activities]}


#: Request bodies (validated by ``fanout.codec``, ``MarkRequest`` here) and responses, for the OpenAPI document.
REQUEST_TYPES: tuple[type[msgspec.Struct], ...] = (ActivityEvent, FollowEvent, MarkRequest)
RESPONSE_TYPES: tuple[type[msgspec.Struct], ...] = (
    ActivityDoc, FeedPage, GroupPage, NotificationPage, Marked, UserPage, Accepted, Health, Delivery
)

_encoder = msgspec.json.Encoder()


def encode(doc: msgspec.Struct) -> bytes:
    return _encoder.encode(doc)
