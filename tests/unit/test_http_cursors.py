"""Page cursors: every key round-trips; anything else is refused with the rule it broke."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout.http.cursors import (
    MAX_CURSOR_CHARS,
    InvalidCursor,
    decode_feed_cursor,
    decode_position_cursor,
    decode_user_cursor,
    feed_cursor,
    position_cursor,
    user_cursor,
)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


ids = st.text(min_size=1, max_size=64).filter(lambda t: len(t.encode(errors="ignore")) == len(t.encode(
    errors="surrogatepass")))


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), ids)
def test_feed_cursors_round_trip(ts: int, activity_id: str) -> None:
    text = feed_cursor((ts, activity_id))
    assert len(text) <= MAX_CURSOR_CHARS
    assert decode_feed_cursor(text) == (ts, activity_id)


@given(st.integers(min_value=-(2**63), max_value=2**63 - 1), st.integers(0, 2**32 - 1), ids)
def test_counted_feed_cursors_round_trip(ts: int, served: int, activity_id: str) -> None:
    text = position_cursor((ts, activity_id), served)
    assert len(text) <= MAX_CURSOR_CHARS
    assert decode_position_cursor(text) == ((ts, activity_id), served)
    assert decode_position_cursor(feed_cursor((ts, activity_id))) == ((ts, activity_id), None)  # an earlier build's


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        (_b64(b"\x01n" + b"\0" * 12), "a time, a count and an activity id"),
        (_b64(b"\x01n" + b"\0" * 12 + b"\xff"), "not UTF-8"),
        (_b64(b"\x02n" + b"\0" * 12 + b"x"), "version 2"),
        (_b64(b"\x01g" + b"\0" * 12 + b"x"), "not a feed cursor"),
        ("A", "base64url"),
        ("", "base64url"),
    ],
)
def test_malformed_counted_feed_cursors_are_refused(text: str, rule: str) -> None:
    with pytest.raises(InvalidCursor, match=rule):
        decode_position_cursor(text)


@given(ids)
def test_user_cursors_round_trip(user: str) -> None:
    assert decode_user_cursor(user_cursor(user)) == user


@pytest.mark.parametrize(
    ("text", "rule"),
    [
        ("", "base64url"),
        ("a b", "base64url"),
        ("abc=", "base64url"),
        ("A" * (MAX_CURSOR_CHARS + 1), "base64url"),
        ("A", "not base64url"),
        (_b64(b"\x02f" + b"\0" * 8 + b"x"), "version 2"),
        (_b64(b"\x01u" + b"someone"), "not a feed cursor"),
        (_b64(b"\x01f" + b"\0" * 8), "time and an activity id"),
        (_b64(b"\x01f" + b"\0" * 8 + b"\xff"), "not UTF-8"),
        (_b64(b"\x01f" + b"\0" * 8 + b"x" * 257), "1 to 256 bytes"),
        (_b64(b"\x01f" + b"\0" * 8 + b"x")[:-1] + "B", "previous page"),  # non-canonical trailing bits
    ],
)
def test_malformed_feed_cursors_are_refused(text: str, rule: str) -> None:
    with pytest.raises(InvalidCursor, match=rule):
        decode_feed_cursor(text)


def test_a_feed_cursor_is_not_a_user_cursor() -> None:
    with pytest.raises(InvalidCursor, match="not a user list cursor"):
        decode_user_cursor(feed_cursor((1, "x")))
