"""The OpenAPI 3.1 document served at ``/openapi.json``.

The schemas come from the same types the server encodes and decodes with: request bodies from the
wire contract (``fanout.codec``, as in ``schemas/*.v1.json``), responses from ``fanout.http.models``
and ``ProblemDoc``. Only the paths and their parameters are written out here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fanout._version import __version__
from fanout.codec import MAX_ID_BYTES, json_schemas
from fanout.settings import Settings
from fanout.targets import known_kinds

from .cursors import MAX_CURSOR_CHARS
from .models import REQUEST_TYPES, RESPONSE_TYPES
from .params import DEFAULT_LIMIT
from .problems import MEDIA_TYPE as PROBLEM_MEDIA_TYPE
from .problems import ProblemDoc

_REF = "#/components/schemas/{name}"
_ID = {"type": "string", "minLength": 1, "maxLength": MAX_ID_BYTES}


def openapi_document(settings: Settings) -> bytes:
    _, components = msgspec.json.schema_components((*REQUEST_TYPES, *RESPONSE_TYPES, ProblemDoc), ref_template=_REF)
    for contract in ("activity.v1.json", "follow.v1.json"):  # the bodies exactly as schemas/*.v1.json say
        components.update(json_schemas()[contract]["$defs"])
    kinds = list(known_kinds(settings))
    limit = {"type": "integer", "minimum": 1, "maximum": settings.http_max_limit, "default": DEFAULT_LIMIT}
    page = [
        _param("limit", "query", limit, "entries per page"),
        _param("cursor", "query", {"type": "string", "minLength": 1, "maxLength": MAX_CURSOR_CHARS},
               "the `next` of the previous page"),
    ]
    user = _param("user", "path", _ID, "a user id")
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "fanout",
            "version": __version__,
            "description": "Activity feeds: read feeds and the follow graph, produce activity and follow "
                           "events to Kafka. Errors are application/problem+json (RFC 9457).",
        },
        "paths": {
            "/healthz": {"get": _op("healthz", "The process is up (no query parameters).", {200: "Health", 400: None})},
            "/readyz": {"get": _op("readyz", "Kafka and Cassandra answer (503 with Retry-After when one does not).",
                                   {200: "Health", 400: None, 503: "Health"})},
            "/v1/feeds/{kind}/{user}": {"get": _op(
                "readFeed", "A page of a feed, newest first (of groups for an aggregated kind). Reading a "
                "timeline marks its user active.",
                {200: "FeedPage", 400: None, 404: None, 503: None},
                [_param("kind", "path", {"type": "string", "enum": kinds}, "the feed kind"), user, *page],
            )},
            "/v1/notifications/{user}": {"get": _op(
                "readNotifications", "A page of notification groups (newest activity first) with seen/read, "
                "and the feed's unseen and unread counts. Marks the reader active.",
                {200: "NotificationPage", 400: None, 404: None, 503: None}, [user, *page],
            )},
            **{f"/v1/notifications/{{user}}/{field}": {"post": _op(
                f"markNotifications{field.title()}", f"Mark groups {field} (`groups`: ids) or all of them "
                f"(`all`: true){', and so seen' if field == 'read' else ''}; answers the counts after.",
                {200: "Marked", 400: None, 404: None, 413: None, 422: None, 503: None}, [user], body="MarkRequest",
            )} for field in ("seen", "read")},
            "/v1/activities": {"post": _op(
                "postActivity", "Produce an activity event (an add, or a remove by `op`).",
                {202: "Accepted", 400: None, 413: None, 422: None, 503: None}, body="ActivityEvent",
            )},
            "/v1/activities/{id}": {"delete": _op(
                "removeActivity", "Produce the removal of an activity by its actor.",
                {202: "Accepted", 400: None, 422: None, 503: None},
                [_param("id", "path", _ID, "the activity id"),
                 _param("actor", "query", _ID, "the activity's actor", required=True)],
            )},
            "/v1/activities/{id}/delivery": {"get": _op(
                "activityDelivery", "How many chunks and feeds of an activity (and of its removal) were planned "
                "and written, per priority, and when the first and last landed (null: nothing recorded).",
                {200: "Delivery", 400: None, 503: None}, [_param("id", "path", _ID, "the activity id")],
            )},
            "/v1/users/{user}/followers": {"get": _op(
                "listFollowers", "Who follows a user, ascending by id, with the count.",
                {200: "UserPage", 400: None, 503: None}, [user, *page],
            )},
            "/v1/users/{user}/following": {"get": _op(
                "listFollowing", "Whom a user follows, ascending by id, with the count.",
                {200: "UserPage", 400: None, 503: None}, [user, *page],
            )},
            "/v1/follows": {"post": _op(
                "postFollow", "Produce a follow or unfollow event.",
                {202: "Accepted", 400: None, 413: None, 422: None, 503: None}, body="FollowEvent",
            )},
        },
        "components": {"schemas": components},
    }
    feed_page = doc["paths"]["/v1/feeds/{kind}/{user}"]["get"]["responses"]["200"]["content"]["application/json"]
    feed_page["schema"] = {"oneOf": [{"$ref": _REF.format(name=name)} for name in ("FeedPage", "GroupPage")]}
    return msgspec.json.encode(doc)


def _param(name: str, where: str, schema: dict[str, Any], description: str, *, required: bool = False
           ) -> dict[str, Any]:
    return {"name": name, "in": where, "required": required or where == "path", "schema": schema,
            "description": description}


def _op(
    operation_id: str,
    summary: str,
    responses: dict[int, str | None],
    parameters: list[dict[str, Any]] | None = None,
    *,
    body: str | None = None,
) -> dict[str, Any]:
    """An operation; a response named None is a problem document."""
    answers: dict[str, Any] = {}
    for status, schema in responses.items():
        media, ref = ("application/json", schema) if schema else (PROBLEM_MEDIA_TYPE, "ProblemDoc")
        answers[str(status)] = {
            "description": schema or "a problem (RFC 9457)",
            "content": {media: {"schema": {"$ref": _REF.format(name=ref)}}},
        }
    op: dict[str, Any] = {"operationId": operation_id, "summary": summary, "responses": answers}
    if parameters:
        op["parameters"] = parameters
    if body:
        op["requestBody"] = {"required": True,
                             "content": {"application/json": {"schema": {"$ref": _REF.format(name=body)}}}}
    return op
