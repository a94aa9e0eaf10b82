"""The wire contract: round trips, and bad input rejected with the field and the rule."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from fanout.activity import MAX_TIME_US, MIN_TIME_US, Activity, derive_id, from_micros, to_micros
from fanout.codec import (
    ActivityEvent,
    ChunkMessage,
    FollowEvent,
    decode_activity_event,
    decode_chunk,
    decode_follow_event,
    encode,
    to_activity,
)
from fanout.errors import InvalidEvent, UnknownVersion

ids = st.text(min_size=1, max_size=40).filter(lambda s: len(s.encode()) <= 256)
times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.just(UTC)
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8,
)


@given(
    actor=ids, verb=ids, obj=ids, target=st.none() | ids, time=st.none() | times,
    extra=st.none() | st.dictionaries(st.text(max_size=8), json_values, max_size=4),
    id_=st.none() | ids, op=st.sampled_from(["add", "remove"]),
)
def test_activity_event_round_trip(actor, verb, obj, target, time, extra, id_, op):  # type: ignore[no-untyped-def]
    assume(op == "add" or id_ is not None or time is not None)  # a remove names its activity
    event = ActivityEvent(actor=actor, verb=verb, object=obj, target=target, time=time, extra=extra, id=id_, op=op)
    assert decode_activity_event(encode(event)) == event


@given(follower=ids, followee=ids, op=st.sampled_from(["follow", "unfollow"]))
def test_follow_event_round_trip(follower, followee, op):  # type: ignore[no-untyped-def]
    if follower == followee:
        return
    event = FollowEvent(follower=follower, followee=followee, op=op)
    assert decode_follow_event(encode(event)) == event


@given(ts=st.integers(MIN_TIME_US, MAX_TIME_US), feeds=st.lists(ids, max_size=20),
       op=st.sampled_from(["add", "remove"]))
def test_chunk_round_trip(ts, feeds, op):  # type: ignore[no-untyped-def]
    chunk = ChunkMessage(
        op=op, priority="low", feeds=feeds, write_ts=ts,
        activity=Activity(id="a", actor="b", verb="c", object="d", ts=ts, extra={"k": [1, "x"]}),
    )
    assert decode_chunk(encode(chunk)) == chunk


@given(times)
def test_micros_round_trip(moment):  # type: ignore[no-untyped-def]
    assert from_micros(to_micros(moment)) == moment


@pytest.mark.parametrize(
    ("payload", "reason", "words"),
    [
        (b"{not json", "json", "not valid JSON"),
        (b'{"verb": "pin", "object": "1"}', "schema", "`actor`"),
        (b'{"actor": "", "verb": "pin", "object": "1"}', "schema", "length >= 1 - at `$.actor`"),
        (b'{"actor": 42, "verb": "pin", "object": "1"}', "schema", "Expected `str`, got `int` - at `$.actor`"),
        (b'{"actor": "a", "verb": "pin", "object": "1", "op": "delete"}', "schema", "`$.op`"),
        (b'{"actor": "a", "verb": "pin", "object": "1", "time": "yesterday"}', "schema", "`$.time`"),
        (b'{"actor": "a", "verb": "pin", "object": "1", "time": "2024-01-01T00:00:00"}', "schema", "time zone"),
        (b'{"actor": "a", "verb": "pin", "object": "1", "extra": [1]}', "schema", "`$.extra`"),
    ],
)
def test_bad_activity_events_name_field_and_rule(payload: bytes, reason: str, words: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_activity_event(payload)
    assert caught.value.reason == reason
    assert words in str(caught.value) or words.replace("time zone", "timezone") in str(caught.value)


def test_unknown_version_is_its_own_error() -> None:
    with pytest.raises(UnknownVersion, match="version 2; this build reads version 1"):
        decode_activity_event(b'{"actor": "a", "verb": "pin", "object": "1", "v": 2, "new_field": 1}')
    with pytest.raises(UnknownVersion):
        decode_follow_event(b'{"follower": "a", "followee": "b", "v": 9}')


def test_size_limits() -> None:
    long_id = "é" * 200  # 200 characters, 400 bytes
    with pytest.raises(InvalidEvent, match=r"`\$.actor` is over 256 bytes") as caught:
        decode_activity_event(json.dumps({"actor": long_id, "verb": "v", "object": "o"}))
    assert caught.value.reason == "oversize"
    with pytest.raises(InvalidEvent, match=r"`\$.extra` is over 16384 bytes"):
        decode_activity_event(json.dumps({"actor": "a", "verb": "v", "object": "o", "extra": {"x": "y" * 17000}}))
    with pytest.raises(InvalidEvent, match="over the limit of 65536") as caught:
        decode_activity_event(b" " * 70_000)
    assert caught.value.reason == "oversize"


def test_follow_self_is_rejected() -> None:
    with pytest.raises(InvalidEvent, match="must differ"):
        decode_follow_event(b'{"follower": "a", "followee": "a"}')


def test_derived_ids_are_deterministic_and_distinct_across_actors() -> None:
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    event = decode_activity_event(json.dumps({"actor": "a", "verb": "pin", "object": "7", "time": moment.isoformat()}))
    first, second = to_activity(event, 1), to_activity(event, 2)
    assert first.id == second.id  # time comes from the event, not from when it was accepted
    other = to_activity(msgspec.structs.replace(event, actor="b"), 1)
    assert other.id != first.id


def test_missing_time_defaults_to_accepted_time_and_id_follows_it() -> None:
    event = decode_activity_event(b'{"actor": "a", "verb": "pin", "object": "7"}')
    accepted = to_micros(datetime(2026, 5, 1, tzinfo=UTC))
    activity = to_activity(event, accepted)
    assert activity.ts == accepted
    assert activity.id == derive_id("a", "pin", "7", None, accepted)
    assert to_activity(event, accepted + 1).id != activity.id


def test_given_ids_of_any_shape_are_kept() -> None:
    for given_id in ("3f2c5a7e-0c1d-4b5e-9a41-1d2e3f4a5b6c", "pin/7@board:3", "ü"):
        event = decode_activity_event(json.dumps({"actor": "a", "verb": "v", "object": "o", "id": given_id}))
        assert to_activity(event, 1).id == given_id


def test_activity_order_is_time_then_id() -> None:
    base = datetime(2026, 1, 1, tzinfo=UTC)
    a = Activity(id="b", actor="x", verb="v", object="o", ts=to_micros(base))
    b = Activity(id="a", actor="x", verb="v", object="o", ts=to_micros(base + timedelta(microseconds=1)))
    c = Activity(id="c", actor="x", verb="v", object="o", ts=to_micros(base))
    assert sorted([a, b, c], key=lambda x: x.key, reverse=True) == [b, c, a]
