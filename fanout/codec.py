"""The wire contract: activity, follow and chunk messages as JSON.

The types here are the source of ``schemas/*.json`` (``fanout schemas --write`` regenerates
them; a test fails when they drift). Decoding never raises anything but ``InvalidEvent``,
whose message names the field and the rule that was broken.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from .activity import Activity, derive_id, to_micros
from .errors import InvalidEvent, UnknownVersion

VERSION = 1
MAX_ID_BYTES = 256
MAX_EXTRA_BYTES = 16 * 1024
DEFAULT_MAX_EVENT_BYTES = 64 * 1024

Id = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=MAX_ID_BYTES, description="non-empty, at most 256 bytes of UTF-8"),
]
Time = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with a time zone")]
Version = Annotated[int, msgspec.Meta(ge=1, description="schema version; this build reads 1")]


class ActivityEvent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """An activity event (topic ``activities``, key = actor)."""

    actor: Id
    verb: Id
    object: Id
    target: Id | None = None
    time: Time | None = None
    extra: dict[str, Any] | None = None
    id: Id | None = None
    op: Literal["add", "remove"] = "add"
    v: Version = VERSION


class FollowEvent(msgspec.Struct, forbid_unknown_fields=True, omit_defaults=True, kw_only=True):
    """A follow event (topic ``follows``, key = follower)."""

    follower: Id
    followee: Id
    op: Literal["follow", "unfollow"] = "follow"
    time: Time | None = None
    v: Version = VERSION


class ChunkMessage(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Internal: one operation on up to ``chunk_size`` feeds (topics ``high`` and ``low``)."""

    op: Literal["add", "remove"]
    priority: Literal["high", "low"]
    activity: Activity
    feeds: list[str]
    write_ts: int
    v: Version = VERSION


_activity_decoder = msgspec.json.Decoder(ActivityEvent)
_follow_decoder = msgspec.json.Decoder(FollowEvent)
_chunk_decoder = msgspec.json.Decoder(ChunkMessage)
_encoder = msgspec.json.Encoder()


def encode(message: msgspec.Struct) -> bytes:
    return _encoder.encode(message)


def _decode(decoder: msgspec.json.Decoder[Any], data: bytes | str, max_bytes: int, what: str) -> Any:
    if isinstance(data, str):
        data = data.encode()
    if len(data) > max_bytes:
        raise InvalidEvent(f"{what} is {len(data)} bytes, over the limit of {max_bytes}", reason="oversize")
    try:
        message = decoder.decode(data)
    except msgspec.ValidationError as exc:
        version = _peek_version(data)
        if version is not None and version != VERSION:
            raise UnknownVersion(f"{what} has version {version}; this build reads version {VERSION}") from None
        raise InvalidEvent(f"{what}: {exc}", reason="schema") from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"{what} is not valid JSON: {exc}", reason="json") from None
    if message.v != VERSION:
        raise UnknownVersion(f"{what} has version {message.v}; this build reads version {VERSION}")
    return message


class _Versioned(msgspec.Struct):
    v: Any = VERSION


def _peek_version(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data, type=_Versioned).v
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None


def _check_id_bytes(message: msgspec.Struct, names: tuple[str, ...], what: str) -> None:
    for name in names:
        value = getattr(message, name)
        if value is not None and len(value.encode()) > MAX_ID_BYTES:
            raise InvalidEvent(f"{what}: `$.{name}` is over {MAX_ID_BYTES} bytes of UTF-8", reason="oversize")


def decode_activity_event(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> ActivityEvent:
    event: ActivityEvent = _decode(_activity_decoder, data, max_bytes, "activity event")
    _check_id_bytes(event, ("actor", "verb", "object", "target", "id"), "activity event")
    if event.extra is not None and len(_encoder.encode(event.extra)) > MAX_EXTRA_BYTES:
        raise InvalidEvent(
            f"activity event: `$.extra` is over {MAX_EXTRA_BYTES} bytes as JSON", reason="oversize"
        )
    return event


def decode_follow_event(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> FollowEvent:
    event: FollowEvent = _decode(_follow_decoder, data, max_bytes, "follow event")
    _check_id_bytes(event, ("follower", "followee"), "follow event")
    if event.follower == event.followee:
        raise InvalidEvent("follow event: `$.follower` and `$.followee` must differ")
    return event


def decode_chunk(data: bytes | str, *, max_bytes: int = 16 * 1024 * 1024) -> ChunkMessage:
    chunk: ChunkMessage = _decode(_chunk_decoder, data, max_bytes, "chunk message")
    return chunk


def activity_event(
    event: ActivityEvent | Mapping[str, Any] | None = None, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES, **fields: Any
) -> ActivityEvent:
    """Build and validate an activity event from a struct, a mapping and/or keyword fields."""
    if isinstance(event, ActivityEvent):
        if fields:
            event = msgspec.structs.replace(event, **fields)
        data: bytes = encode(event)
    else:
        merged = dict(event or {}, **fields)
        try:
            data = msgspec.json.encode(merged)
        except (TypeError, msgspec.EncodeError) as exc:
            raise InvalidEvent(f"activity event: {exc}") from None
    return decode_activity_event(data, max_bytes=max_bytes)


def remove_event(activity_id: str, *, actor: str, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> ActivityEvent:
    """Build and validate the removal of activity ``activity_id`` by its ``actor``."""
    return activity_event(
        actor=actor, verb="remove", object=activity_id, id=activity_id, op="remove", max_bytes=max_bytes
    )


def follow_event(
    follower: str, followee: str, op: str = "follow", *, time: datetime | str | None = None,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
) -> FollowEvent:
    """Build and validate a follow (``op="follow"``) or unfollow (``op="unfollow"``) event."""
    data: dict[str, Any] = {"follower": follower, "followee": followee, "op": op}
    if time is not None:
        data["time"] = time
    try:
        raw = msgspec.json.encode(data)
    except (TypeError, msgspec.EncodeError) as exc:
        raise InvalidEvent(f"follow event: {exc}") from None
    return decode_follow_event(raw, max_bytes=max_bytes)


def validate_activity_event(event: ActivityEvent) -> ActivityEvent:
    """Check an event built in Python (not decoded) against the same rules as the wire."""
    return decode_activity_event(encode(event))


def to_activity(event: ActivityEvent, accepted_ts: int) -> Activity:
    """The activity an event describes; ``accepted_ts`` is its time when the event has none.

    In the pipeline ``accepted_ts`` is the Kafka record's timestamp, so a replay derives the
    same time and the same id.
    """
    ts = to_micros(event.time) if event.time is not None else accepted_ts
    activity_id = event.id or derive_id(event.actor, event.verb, event.object, event.target, ts)
    return Activity(
        id=activity_id,
        actor=event.actor,
        verb=event.verb,
        object=event.object,
        ts=ts,
        target=event.target,
        extra=event.extra,
    )


SCHEMA_TYPES: dict[str, type[msgspec.Struct]] = {
    "activity.v1.json": ActivityEvent,
    "follow.v1.json": FollowEvent,
    "chunk.v1.json": ChunkMessage,
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema documents of the wire contract, by file name."""
    out: dict[str, dict[str, Any]] = {}
    for filename, type_ in SCHEMA_TYPES.items():
        schema = msgspec.json.schema(type_)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://fanout.dev/schemas/{filename}"
        out[filename] = schema
    return out
