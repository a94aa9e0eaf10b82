"""Hostile input: every record the codec cannot accept raises ``InvalidEvent`` with a reason.

Nothing else may escape a decoder (``UnicodeDecodeError``, ``RecursionError``), and a chunk
message that decodes is one the store can write: the writer never meets a row that Cassandra
or its driver rejects (a partition key over 64 KiB, a write timestamp out of int64 or outside
its band, text that is not UTF-8, JSON nested too deep).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fanout import codec
from fanout.activity import FOLLOW_BAND, REMOVED_WRITE_TS
from fanout.codec import decode_activity_event, decode_chunk, decode_follow_event
from fanout.errors import InvalidEvent

MAX_DEPTH: int = getattr(codec, "MAX_DEPTH", 32)  # the contract's bound on `extra` nesting
GOOD_ACTIVITY = b'{"actor":"a","verb":"v","object":"o","time":"2026-01-01T00:00:00Z"}'
GOOD_FOLLOW = b'{"follower":"a","followee":"b"}'
Decoder = Callable[[bytes], Any]


def _chunk(**changes: Any) -> dict[str, Any]:
    activity = {"id": "a1", "actor": "ann", "verb": "pin", "object": "o", "ts": 1_700_000_000_000_000}
    chunk: dict[str, Any] = {
        "op": "add", "priority": "high", "activity": activity, "feeds": ["timeline:f1"],
        "write_ts": activity["ts"],
    }
    for key, value in changes.items():
        if key.startswith("activity_"):
            activity[key.removeprefix("activity_")] = value
        else:
            chunk[key] = value
    return chunk


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


def _raw_nested(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


@pytest.mark.parametrize(
    ("decode", "good"),
    [(decode_activity_event, GOOD_ACTIVITY), (decode_follow_event, GOOD_FOLLOW),
     (decode_chunk, json.dumps(_chunk()).encode())],
    ids=["activity", "follow", "chunk"],
)
@pytest.mark.parametrize("bad", [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80"], ids=repr)
def test_invalid_utf8_inside_a_string_is_invalid_json(decode: Decoder, good: bytes, bad: bytes) -> None:
    poisoned = good.replace(b'"a"', b'"a' + bad + b'"', 1) if b'"a"' in good else good.replace(
        b'"ann"', b'"ann' + bad + b'"', 1)
    assert poisoned != good
    with pytest.raises(InvalidEvent, match="UTF-8") as caught:
        decode(poisoned)
    assert caught.value.reason == "json"


def test_invalid_utf8_in_extra_and_in_an_unknown_place() -> None:
    with pytest.raises(InvalidEvent, match="UTF-8"):
        decode_activity_event(b'{"actor":"a","verb":"v","object":"o","extra":{"k\xfe":"x"}}')
    with pytest.raises(InvalidEvent, match="UTF-8"):
        decode_activity_event(b'{"actor":"a","verb":"v","object":"o","extra":{"k":["\xc3("]}}')


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 100, 990, 5_000, 100_000])
def test_extra_nested_deeper_than_the_contract_is_refused(depth: int) -> None:
    data = b'{"actor":"a","verb":"v","object":"o","extra":{"k":' + _raw_nested(depth - 1) + b"}}"
    with pytest.raises(InvalidEvent, match=f"nested deeper than {MAX_DEPTH}") as caught:
        decode_activity_event(data, max_bytes=len(data) + 1)
    assert caught.value.reason == "oversize"


def test_extra_at_the_depth_limit_is_accepted() -> None:
    extra = {"k": _nested(MAX_DEPTH - 1)}  # the object itself is level 1
    event = decode_activity_event(json.dumps({"actor": "a", "verb": "v", "object": "o", "extra": extra}))
    assert event.extra == extra


def test_a_contract_sized_extra_nested_a_thousand_levels_deep() -> None:
    """The issue's 6 KB `extra` that raised RecursionError: small enough, far too deep."""
    data = b'{"actor":"a","verb":"v","object":"o","extra":{"k":' + _raw_nested(3_000) + b"}}"
    assert len(data) < 16 * 1024
    with pytest.raises(InvalidEvent) as caught:
        decode_activity_event(data)
    assert caught.value.reason == "oversize"


@pytest.mark.parametrize("where", ["top", "field", "follow", "chunk"])
def test_deep_nesting_anywhere_never_raises_recursion_error(where: str) -> None:
    deep = _raw_nested(50_000)
    data = {
        "top": deep,
        "field": b'{"actor":"a","verb":"v","object":"o","later":' + deep + b"}",
        "follow": b'{"follower":"a","followee":"b","x":' + deep + b"}",
        "chunk": json.dumps(_chunk(activity_extra={"k": 1})).encode().replace(b'{"k": 1}', b'{"k":' + deep + b"}"),
    }[where]
    decode = {"follow": decode_follow_event, "chunk": decode_chunk}.get(where, decode_activity_event)
    with pytest.raises(InvalidEvent):
        decode(data, max_bytes=len(data) + 1)


@settings(max_examples=300)
@given(st.binary(max_size=200))
def test_any_bytes_decode_or_raise_invalid_event(data: bytes) -> None:
    for decode in (decode_activity_event, decode_follow_event, decode_chunk):
        with contextlib.suppress(InvalidEvent):
            decode(data)


@settings(max_examples=300)
@given(st.integers(0, len(GOOD_ACTIVITY) - 1), st.binary(min_size=1, max_size=4))
def test_corrupted_events_decode_or_raise_invalid_event(at: int, junk: bytes) -> None:
    data = GOOD_ACTIVITY[:at] + junk + GOOD_ACTIVITY[at:]
    with contextlib.suppress(InvalidEvent):
        decode_activity_event(data)


# forged chunk messages: they decode, and the store must be able to write them -------------------
@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"feeds": ["x" * 70_000]}, "`$.feeds[0]` is over"),
        ({"feeds": ["ok", ""]}, "`$.feeds[1]` is empty"),
        ({"write_ts": -(2**63)}, "`$.write_ts`"),
        ({"write_ts": 2**63}, "`$.write_ts`"),
        ({"write_ts": 10**30}, "`$.write_ts`"),
        ({"write_ts": -1}, "`$.write_ts`"),
        ({"write_ts": FOLLOW_BAND}, "`$.write_ts`"),  # an add above its band would beat unfollows
        ({"op": "remove", "write_ts": REMOVED_WRITE_TS + 1}, "`$.write_ts`"),
        ({"activity_ts": -(2**63)}, "`$.activity.ts`"),
        ({"activity_ts": 2**63}, "`$.activity.ts`"),
        ({"activity_ts": FOLLOW_BAND}, "`$.activity.ts`"),
        ({"activity_actor": "é" * 200}, "`$.activity.actor` is over 256 bytes"),
        ({"activity_id": ""}, "`$.activity.id`"),
        ({"activity_extra": {"k": _nested(MAX_DEPTH)}}, f"nested deeper than {MAX_DEPTH}"),
        ({"activity_extra": {"x": "y" * 17_000}}, "`$.activity.extra` is over 16384 bytes"),
    ],
)
def test_forged_chunks_the_store_would_reject_are_invalid(changes: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_chunk(json.dumps(_chunk(**changes)).encode())
    assert words in str(caught.value)


def test_planned_chunks_stay_valid() -> None:
    assert decode_chunk(json.dumps(_chunk()).encode()).feeds == ["timeline:f1"]
    removal = decode_chunk(json.dumps(_chunk(op="remove", write_ts=REMOVED_WRITE_TS)).encode())
    assert removal.write_ts == REMOVED_WRITE_TS


@pytest.mark.parametrize(
    "bad",
    [rb'"a\ud800"', rb'"a\uDBFFx"', rb'"\ud800\u0041"', rb'"a\ud800\\udc00"'],
    ids=["alone", "upper-case", "before-another-escape", "before-an-escaped-backslash"],
)
def test_an_unpaired_surrogate_escape_is_named_not_called_truncation(bad: bytes) -> None:
    """msgspec calls a ``\\uD800``-``\\uDBFF`` escape with no low half after it, near the end of
    the data, "Input data was truncated": the message says what is wrong instead."""
    last = b'{"verb":"v","object":"o","time":"2026-01-01T00:00:00Z","actor":' + bad + b"}"
    with pytest.raises(InvalidEvent, match="surrogate") as caught:
        decode_activity_event(last)  # within 6 bytes of the end
    assert "truncated" not in str(caught.value)
    assert caught.value.reason == "json"


CUT = [b'{"actor":"a', b'{"actor":"a\\\\ud800', b'{"actor":"a\\u12', b'{"actor":"a\\ud800\\udc',
       b'{"actor":"a\\ud800\\u', b'{"actor":"a\\ud800\\', b'{"actor":"a\\ud800\\ud']  # cut inside a pair too


@pytest.mark.parametrize("cut", CUT, ids=repr)
def test_a_truncated_event_still_says_so(cut: bytes) -> None:
    with pytest.raises(InvalidEvent, match="truncated"):
        decode_activity_event(cut)


def test_an_escaped_backslash_before_u_is_no_escape() -> None:
    event = decode_activity_event(GOOD_ACTIVITY.replace(b'"a"', rb'"a\\ud800"', 1))
    assert event.actor == "a\\ud800"
