"""The wire contract: activity, follow and chunk messages as JSON.

The types here are the source of ``schemas/*.json`` (``fanout schemas --write`` regenerates
them; a test fails when they drift). Decoding never raises anything but ``InvalidEvent``,
whose message names the field and the rule that was broken, and ``reason`` says which kind of
rule (``json``: not UTF-8 JSON; ``schema``; ``version``; ``oversize``: bytes or nesting depth).
Hostile input included: invalid UTF-8 inside a string, JSON nested thousands of levels deep.

A chunk message that decodes is one the store can write: its ids and feeds fit Cassandra's keys,
its write timestamp lies in the band of its operation (``fanout.activity``), its activity time in
[MIN_TIME_US, MAX_TIME_US]; so a forged or corrupted chunk is dead-lettered before any write.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Annotated, Any, Literal, TypeVar

import msgspec

from .activity import (
    FOLLOW_BAND,
    MAX_TIME_US,
    MIN_TIME_US,
    REMOVED_WRITE_TS,
    Activity,
    derive_id,
    from_micros,
    now_micros,
    to_micros,
)
from .errors import InvalidEvent, UnknownVersion, json_error
from .settings import Settings
from .targets import MAX_TARGET_CHARS, MAX_TARGETS, TARGET_PATTERN, check_targets

VERSION = 1
MAX_ID_BYTES = 256
MAX_EXTRA_BYTES = 16 * 1024
#: How deeply ``extra`` may nest (the object itself is level 1). Deeper JSON anywhere in a record
#: is refused too, without ever reaching the interpreter's recursion limit.
MAX_DEPTH = 32
#: A feed id (``<kind>:<user>``) in a chunk message; Cassandra refuses partition keys over 64 KiB.
MAX_FEED_BYTES = 1024
DEFAULT_MAX_EVENT_BYTES = 64 * 1024

Id = Annotated[
    str,
    msgspec.Meta(min_length=1, max_length=MAX_ID_BYTES, description="non-empty, at most 256 bytes of UTF-8"),
]
Time = Annotated[datetime, msgspec.Meta(tz=True, description="RFC 3339 with a time zone")]
Target = Annotated[
    str,
    msgspec.Meta(max_length=MAX_TARGET_CHARS, pattern=TARGET_PATTERN, description="a feed: `kind:user`"),
]
Targets = Annotated[list[Target], msgspec.Meta(max_length=MAX_TARGETS, description="extra feeds it reaches")]
Version = Annotated[int, msgspec.Meta(ge=1, description="schema version; this build reads 1")]


class ActivityEvent(msgspec.Struct, omit_defaults=True, kw_only=True):
    """An activity event (topic ``activities``, key = actor).

    An add needs ``verb`` and ``object``. A remove names its activity by ``id``, or by ``verb``,
    ``object`` (``target``) and ``time``, which derive the id of the add (``removed_id``).
    """

    actor: Id
    verb: Id | None = None
    object: Id | None = None
    target: Id | None = None
    time: Time | None = None
    extra: dict[str, Any] | None = None
    to: Targets | None = None
    id: Id | None = None
    op: Literal["add", "remove"] = "add"
    v: Version = VERSION


class FollowEvent(msgspec.Struct, omit_defaults=True, kw_only=True):
    """A follow event (topic ``follows``, key = follower)."""

    follower: Id
    followee: Id
    op: Literal["follow", "unfollow"] = "follow"
    time: Time | None = None
    v: Version = VERSION


class ChunkMessage(msgspec.Struct, kw_only=True):
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
        _check_version(_peek_version(data), what)
        raise InvalidEvent(f"{what}: {exc}", reason="schema") from None
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"{what} is not valid JSON: {json_error(str(exc), data)}", reason="json") from None
    except UnicodeDecodeError as exc:
        raise InvalidEvent(f"{what} is not valid JSON: a string is not UTF-8 ({exc.reason})", reason="json") from None
    except RecursionError:
        raise InvalidEvent(f"{what} is JSON nested deeper than {MAX_DEPTH} levels", reason="oversize") from None
    _check_version(message.v, what)
    return message


def _check_version(version: Any, what: str) -> None:
    """A newer version than this build reads is ``UnknownVersion`` (re-drive it after upgrading)."""
    if not isinstance(version, int) or isinstance(version, bool):
        raise InvalidEvent(f"{what}: `$.v` must be an integer (the schema version, {VERSION}), not {version!r:.40}")
    if version > VERSION:
        raise UnknownVersion(
            f"{what} has version {version}; this build reads version {VERSION} "
            "(upgrade fanout, then re-drive it: `fanout dead --redrive --reason version`)"
        )


class _Versioned(msgspec.Struct):
    v: Any = VERSION


def _peek_version(data: bytes) -> Any:
    try:
        return msgspec.json.decode(data, type=_Versioned).v
    except (msgspec.ValidationError, msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        return VERSION  # not even an object: the schema error says what is wrong


def _check_id_bytes(message: msgspec.Struct, names: tuple[str, ...], what: str, at: str = "$") -> None:
    for name in names:
        value = getattr(message, name)
        if value is None:
            continue
        if not value:
            raise InvalidEvent(f"{what}: `{at}.{name}` is empty")
        if len(value.encode()) > MAX_ID_BYTES:
            raise InvalidEvent(f"{what}: `{at}.{name}` is over {MAX_ID_BYTES} bytes of UTF-8", reason="oversize")


def _too_deep(value: Any, limit: int) -> bool:
    """Whether lists and objects nest more than ``limit`` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            children: Any = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if level > limit:
            return True
        stack.extend((child, level + 1) for child in children)
    return False


def _check_extra(extra: dict[str, Any] | None, what: str, at: str = "$") -> None:
    if extra is None:
        return
    if _too_deep(extra, MAX_DEPTH):
        raise InvalidEvent(f"{what}: `{at}.extra` is nested deeper than {MAX_DEPTH} levels", reason="oversize")
    if len(_encoder.encode(extra)) > MAX_EXTRA_BYTES:
        raise InvalidEvent(f"{what}: `{at}.extra` is over {MAX_EXTRA_BYTES} bytes as JSON", reason="oversize")


def decode_activity_event(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> ActivityEvent:
    event: ActivityEvent = _decode(_activity_decoder, data, max_bytes, "activity event")
    _check_shape(event)
    _check_id_bytes(event, ("actor", "verb", "object", "target", "id"), "activity event")
    _check_extra(event.extra, "activity event")
    return event


REMOVE_NEEDS = "a remove needs `$.id`, or `$.verb`, `$.object` and `$.time` of the activity it removes"


def _check_shape(event: ActivityEvent) -> None:
    """The one rule of what an add and a remove need (the JSON Schema states it with if/then)."""
    if event.op == "remove":
        if event.id is None and (event.verb is None or event.object is None or event.time is None):
            raise InvalidEvent(f"activity event: {REMOVE_NEEDS} (they derive its id)")
        return
    for name in ("verb", "object"):
        if getattr(event, name) is None:
            raise InvalidEvent(f"activity event: an add needs `$.{name}`")


def decode_follow_event(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> FollowEvent:
    event: FollowEvent = _decode(_follow_decoder, data, max_bytes, "follow event")
    _check_id_bytes(event, ("follower", "followee"), "follow event")
    if event.follower == event.followee:
        raise InvalidEvent("follow event: `$.follower` and `$.followee` must differ")
    return event


def decode_chunk(data: bytes | str, *, max_bytes: int = 16 * 1024 * 1024) -> ChunkMessage:
    what = "chunk message"
    chunk: ChunkMessage = _decode(_chunk_decoder, data, max_bytes, what)
    activity = chunk.activity
    _check_id_bytes(activity, ("id", "actor", "verb", "object", "target"), what, "$.activity")
    _check_range(activity.ts, MIN_TIME_US, MAX_TIME_US, what, "$.activity.ts")
    _check_extra(activity.extra, what, "$.activity")
    for i, feed in enumerate(chunk.feeds):
        if not feed:
            raise InvalidEvent(f"{what}: `$.feeds[{i}]` is empty")
        if len(feed.encode()) > MAX_FEED_BYTES:
            raise InvalidEvent(f"{what}: `$.feeds[{i}]` is over {MAX_FEED_BYTES} bytes of UTF-8", reason="oversize")
    # adds write in the add band (below every follow copy and unfollow), removes at most at REMOVED_WRITE_TS
    highest = FOLLOW_BAND - 1 if chunk.op == "add" else REMOVED_WRITE_TS
    _check_range(chunk.write_ts, 0, highest, what, f"$.write_ts` of an `{chunk.op}")
    return chunk


def _check_range(value: int, low: int, high: int, what: str, at: str) -> None:
    if not low <= value <= high:
        raise InvalidEvent(f"{what}: `{at}` must lie in [{low}, {high}], not {value}")


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
        except (TypeError, ValueError, msgspec.EncodeError) as exc:  # UnicodeEncodeError is a ValueError
            raise InvalidEvent(f"activity event: {exc}") from None
    return decode_activity_event(data, max_bytes=max_bytes)


def remove_event(activity_id: str, *, actor: str, max_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> ActivityEvent:
    """Build and validate the removal of activity ``activity_id`` by its ``actor``."""
    return activity_event(actor=actor, id=activity_id, op="remove", max_bytes=max_bytes)


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
    except (TypeError, ValueError, msgspec.EncodeError) as exc:
        raise InvalidEvent(f"follow event: {exc}") from None
    return decode_follow_event(raw, max_bytes=max_bytes)


def validate_activity_event(event: ActivityEvent) -> ActivityEvent:
    """Check an event built in Python (not decoded) against the same rules as the wire."""
    return decode_activity_event(encode(event))


def to_activity(event: ActivityEvent, accepted_ts: int) -> Activity:
    """The activity an add describes; ``accepted_ts`` is its time when the event has none.

    In the pipeline ``accepted_ts`` is the Kafka record's timestamp, so a replay derives the
    same time and the same id.
    """
    if event.verb is None or event.object is None:
        raise InvalidEvent("activity event: an add needs `$.verb` and `$.object`")
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
        to=tuple(dict.fromkeys(event.to)) if event.to else None,
    )


def event_time_us(event: ActivityEvent | FollowEvent, accepted_us: int, settings: Settings) -> int:
    """The time an add or a follow event takes effect at, in microseconds: its ``time``, else
    ``accepted_us`` (the record timestamp; the clock in the eager mode and when producing).

    Refused with reason ``time``: an accepted time outside [MIN_TIME_US, MAX_TIME_US], or a
    ``time`` outside [accepted - ``max_past_days``, accepted + ``max_future_skew_seconds``] (and
    that range). A replay decides the same: it has the same record timestamps.
    """
    what = "activity event" if isinstance(event, ActivityEvent) else "follow event"
    if not MIN_TIME_US <= accepted_us <= MAX_TIME_US:
        raise InvalidEvent(
            f"{what}: accepted at {_show(accepted_us)} (the record timestamp), outside the times fanout "
            f"handles, {_show(MIN_TIME_US)} to {_show(MAX_TIME_US)}", reason="time")
    if event.time is None:
        return accepted_us
    ts = to_micros(event.time)
    low = max(MIN_TIME_US, accepted_us - settings.max_past_days * 86_400_000_000)
    high = min(MAX_TIME_US, accepted_us + settings.max_future_skew_seconds * 1_000_000)
    if not low <= ts <= high:
        raise InvalidEvent(
            f"{what}: `$.time` {event.time.isoformat()} is outside {_show(low)} to {_show(high)}: at most "
            f"FANOUT_MAX_PAST_DAYS={settings.max_past_days} before and FANOUT_MAX_FUTURE_SKEW_SECONDS="
            f"{settings.max_future_skew_seconds} after {_show(accepted_us)}, when it was accepted", reason="time")
    return ts


E = TypeVar("E", ActivityEvent, FollowEvent)


def check_event_time(event: E, settings: Settings) -> E:
    """``event`` once its time passed ``event_time_us`` against the clock (at produce time the
    record timestamp will be about now) and its targets ``check_targets``; a remove's time only
    derives an id and is not checked, nor its ``to`` (the removal reaches the add's targets)."""
    if not (isinstance(event, ActivityEvent) and event.op == "remove"):
        event_time_us(event, now_micros(), settings)
    if isinstance(event, ActivityEvent) and event.op == "add":
        check_targets(event.to, settings)
    return event


def _show(ts: int) -> str:
    return from_micros(ts).isoformat() if MIN_TIME_US <= ts <= MAX_TIME_US else f"{ts} us since the epoch"


def removed_id(event: ActivityEvent) -> str:
    """The id of the activity a remove names: its ``id``, or the id its content and time derive."""
    if event.id is not None:
        return event.id
    if event.verb is None or event.object is None or event.time is None:
        raise InvalidEvent(f"activity event: {REMOVE_NEEDS}")
    return derive_id(event.actor, event.verb, event.object, event.target, to_micros(event.time))


def activity_id(event: ActivityEvent, accepted_ts: int) -> str:
    """The id of the activity an add or a remove is about (``accepted_ts``: as in ``to_activity``)."""
    return removed_id(event) if event.op == "remove" else to_activity(event, accepted_ts).id


SCHEMA_TYPES: dict[str, type[msgspec.Struct]] = {
    "activity.v1.json": ActivityEvent,
    "follow.v1.json": FollowEvent,
    "chunk.v1.json": ChunkMessage,
}


def _present(*names: str) -> dict[str, Any]:
    return {"required": list(names), "properties": {name: {"not": {"type": "null"}} for name in names}}


#: ``_check_shape`` as JSON Schema: what an add and a remove need.
_ACTIVITY_RULE: dict[str, Any] = {
    "if": {"properties": {"op": {"const": "remove"}}, "required": ["op"]},
    "then": {"anyOf": [_present("id"), _present("verb", "object", "time")]},
    "else": _present("verb", "object"),
}


def json_schemas() -> dict[str, dict[str, Any]]:
    """The JSON Schema documents of the wire contract, by file name."""
    out: dict[str, dict[str, Any]] = {}
    for filename, type_ in SCHEMA_TYPES.items():
        schema = msgspec.json.schema(type_)
        if type_ is ActivityEvent:
            schema["$defs"]["ActivityEvent"].update(_ACTIVITY_RULE)
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://fanout.dev/schemas/{filename}"
        out[filename] = schema
    return out
