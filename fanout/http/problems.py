"""Errors of the HTTP API as ``application/problem+json`` (RFC 9457).

Every error a client can cause is a ``Problem`` raised by the code that noticed it; the app turns
it into a response. Validation problems name the ``field`` (a JSON path such as ``actor`` or
``extra.tags``, or a parameter such as ``cursor``) and the ``rule`` that was broken::

    HTTP/1.1 422 Unprocessable Content
    Content-Type: application/problem+json

    {"type": "https://fanout.dev/problems/invalid-body", "title": "The body breaks the wire contract",
     "status": 422, "detail": "activity event: Expected `str` of length >= 1 - at `$.actor`",
     "field": "actor", "rule": "Expected `str` of length >= 1"}

Status codes: 400 a malformed parameter or JSON, 404 no such route or feed kind, 405 a method
the route does not take, 413 a body over the limit, 422 a body that breaks the wire contract,
503 Kafka or Cassandra not answering (with ``Retry-After``), 500 only for a bug.
"""

from __future__ import annotations

import re
from typing import Final

import msgspec
from starlette.responses import Response

from fanout.errors import InvalidEvent

TYPE_BASE: Final = "https://fanout.dev/problems/"
MEDIA_TYPE: Final = "application/problem+json"
RETRY_AFTER_SECONDS: Final = 5

# msgspec's messages: "<what>: <rule>[ - at `$.path`]", some naming a `field` in the rule; the
# codec's own messages name `$.field` inline.
_MESSAGE = re.compile(r"^(?:[^:`]*: )?(?P<rule>.*?)(?: - at `\$\.?(?P<path>[^`]*)`)?$", re.DOTALL)
_NAMED = re.compile(r"(?:missing required|unknown) field `(?P<name>[^`]+)`")
_INLINE = re.compile(r"`\$\.(?P<field>[^`]+)`")


class ProblemDoc(msgspec.Struct, omit_defaults=True, kw_only=True):
    """The body of every error response."""

    type: str
    title: str
    status: int
    detail: str
    field: str | None = None  # the parameter or body field at fault (a JSON path for bodies)
    rule: str | None = None  # the rule it broke


class Problem(Exception):
    """An error answered as problem+json: ``raise Problem(400, "invalid-parameter", ...)``."""

    def __init__(
        self,
        status: int,
        slug: str,
        title: str,
        detail: str,
        *,
        field: str | None = None,
        rule: str | None = None,
    ) -> None:
        super().__init__(detail)
        self.doc = ProblemDoc(
            type=TYPE_BASE + slug, title=title, status=status, detail=detail, field=field, rule=rule
        )

    @property
    def status(self) -> int:
        return self.doc.status

    def response(self) -> Response:
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if self.status == 503 else None
        return Response(msgspec.json.encode(self.doc), status_code=self.status, media_type=MEDIA_TYPE,
                        headers=headers)


def invalid_parameter(field: str, rule: str, detail: str | None = None) -> Problem:
    """A 400 for a path or query parameter: ``field`` is its name."""
    return Problem(400, "invalid-parameter", "A parameter is invalid", detail or f"`{field}`: {rule}",
                   field=field, rule=rule)


def invalid_body(exc: InvalidEvent) -> Problem:
    """A 400 (not JSON) or 422 (breaks the contract) for a body the codec refused."""
    message = str(exc)
    field, rule = field_and_rule(exc)
    if exc.reason == "json":
        return Problem(400, "malformed-json", "The body is not valid JSON", message, field="body", rule=rule)
    if exc.reason == "oversize" and field == "body":
        return too_large(message)
    return Problem(422, "invalid-body", "The body breaks the wire contract", message, field=field, rule=rule)


def too_large(detail: str) -> Problem:
    return Problem(413, "payload-too-large", "The body is too large", detail, field="body", rule="size")


def unavailable(backend: str, detail: str) -> Problem:
    """A 503: ``backend`` ("Kafka" or "Cassandra") is not answering."""
    return Problem(503, "backend-unavailable", f"{backend} is not available", detail)


def field_and_rule(exc: InvalidEvent) -> tuple[str, str]:
    """The body field at fault (a JSON path without ``$.``; ``body`` for the whole document) and
    the rule, from the codec's message."""
    message = str(exc)
    if exc.reason == "version":
        return "v", message.split("; ", 1)[-1]
    found = _MESSAGE.match(message)
    rule = found["rule"] if found else message
    path = (found["path"] if found else None) or ""
    named = _NAMED.search(rule)
    if named:
        return ".".join(filter(None, (path, named["name"]))), rule
    if not path:
        inline = _INLINE.search(rule)
        path = inline["field"] if inline else ""
    return path or "body", rule
