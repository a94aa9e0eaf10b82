"""Aggregated and notification feeds over HTTP: pages of groups, and marking groups seen or read.

    GET  /v1/feeds/{kind}/{user}            for an aggregated kind: {"groups": [...], "next"}
    GET  /v1/notifications/{user}           {"groups": [... "seen", "read"], "unseen", "unread", "next"}
    POST /v1/notifications/{user}/seen      {"groups": [ids]} or {"all": true}, optional "up_to" (the
                                            newest last_time shown) -> {"unseen", "unread"}
    POST /v1/notifications/{user}/read      the same; a read group is seen too

The notification kind is the first of ``FANOUT_NOTIFICATION_KINDS`` (``notification``). Cursors
are group cursors (``cursors.group_cursor``): the newest activity of the last group served.
"""

from __future__ import annotations

import msgspec

from fanout.activity import MAX_TIME_US, MIN_TIME_US, to_micros
from fanout.core import Fanout
from fanout.errors import InvalidEvent, json_error
from fanout.marks import Field
from fanout.store import Key

from .cursors import group_cursor
from .models import GroupPage, Marked, MarkRequest, NotificationPage, group_doc, notification_doc

__all__ = ["GroupPage", "NotificationPage", "group_page", "mark", "mark_request", "notification_page"]
from .problems import Problem, invalid_body

_mark_decoder = msgspec.json.Decoder(MarkRequest)


async def group_page(fanout: Fanout, kind: str, user: str, limit: int, before: Key | None) -> GroupPage:
    page = await fanout.read_aggregated(user, kind=kind, limit=limit, before=before)
    return GroupPage(groups=[group_doc(g) for g in page.groups], next=_next(page.next))


async def notification_page(fanout: Fanout, kind: str, user: str, limit: int, before: Key | None
                            ) -> NotificationPage:
    page = await fanout.notifications(user, kind=kind, limit=limit, before=before)
    return NotificationPage(
        groups=[notification_doc(n.group, n.seen, n.read) for n in page.groups],
        unseen=page.unseen, unread=page.unread, next=_next(page.next))


def mark_request(body: bytes) -> MarkRequest:
    """The mark a body asks for, or a 400/422 problem."""
    try:
        request = _mark_decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise invalid_body(InvalidEvent(f"mark request: {exc}")) from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        text = json_error(str(exc), body)
        raise invalid_body(InvalidEvent(f"mark request is not valid JSON: {text}", reason="json")) from None
    if request.all == (request.groups is not None):
        raise Problem(422, "invalid-body", "The body breaks the wire contract",
                      'mark request: give either `groups` (a list of group ids) or `"all": true`',
                      field="groups", rule="groups or all")
    if request.up_to is not None and not MIN_TIME_US <= to_micros(request.up_to) <= MAX_TIME_US:
        raise Problem(422, "invalid-body", "The body breaks the wire contract",
                      "mark request: `up_to` is outside the times an activity can have (1970 to 3111)",
                      field="up_to", rule="time range")
    return request


async def mark(fanout: Fanout, kind: str, user: str, field: Field, request: MarkRequest) -> Marked:
    mark_call = fanout.mark_seen if field == "seen" else fanout.mark_read
    counts = await mark_call(user, request.groups, kind=kind, up_to=request.up_to)
    return Marked(unseen=counts.unseen, unread=counts.unread)


def _next(key: Key | None) -> str | None:
    return None if key is None else group_cursor(key)
