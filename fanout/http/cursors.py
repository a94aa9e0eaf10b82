"""Opaque page cursors: what ``next`` holds and ``cursor=`` takes.

A cursor is the base64url text (no padding) of a version byte, a tag byte and the position:

    feed cursor      1 'n' ts (8 bytes, signed big-endian) served (4 bytes) activity id (UTF-8)
                     the key of the last entry served and how many entries the walk served: the
                     next page holds the entries older than it, up to the feed's max_length in all
                     (an earlier build's 1 'f' ts activity id, without the count, still pages)
    user cursor      1 'u' user id (UTF-8)                                       the last user served
    group cursor     1 'g' ts, activity id, as a feed cursor                     the newest activity of
                     the last group served: the next page holds the groups whose newest one is older

Positions are keys, not offsets, so a cursor stays valid while entries are added or removed: a
page never repeats or skips an entry that was there when the walk began and still is. Anything
that is not a cursor this build wrote is refused with ``InvalidCursor``, naming the rule.
"""

from __future__ import annotations

import base64
import binascii
import re
from typing import Final

from fanout.codec import MAX_ID_BYTES
from fanout.store import Key

VERSION: Final = 1
_FEED: Final = ord("f")
_NUMBERED: Final = ord("n")
_USER: Final = ord("u")
_GROUP: Final = ord("g")
MAX_CURSOR_CHARS: Final = 4 * (2 + 8 + 4 + MAX_ID_BYTES + 2) // 3
_ALPHABET = re.compile(r"[A-Za-z0-9_-]+")


class InvalidCursor(ValueError):
    """The text is not a cursor of this kind; the message says which rule it broke."""


def feed_cursor(key: Key, tag: int = _FEED) -> str:
    ts, activity_id = key
    return _encode(tag, ts.to_bytes(8, "big", signed=True) + activity_id.encode())


def decode_feed_cursor(text: str, tag: int = _FEED) -> Key:
    what = "a feed cursor" if tag == _FEED else "a group cursor"
    return _key(_body(_raw(text), tag, what), what)


def _key(body: bytes, what: str) -> Key:
    if len(body) < 9:
        raise InvalidCursor(f"{what} holds a time and an activity id")
    return int.from_bytes(body[:8], "big", signed=True), _text(body[8:])


def position_cursor(key: Key, served: int) -> str:
    """The cursor after ``served`` entries of a feed walk, the last of them ``key``."""
    ts, activity_id = key
    return _encode(_NUMBERED, ts.to_bytes(8, "big", signed=True) + served.to_bytes(4, "big") + activity_id.encode())


def decode_position_cursor(text: str) -> tuple[Key, int | None]:
    """The key and the count of a ``position_cursor``; an earlier build's feed cursor gives no count."""
    raw = _raw(text)
    if raw[1] == _FEED:
        return _key(raw[2:], "a feed cursor"), None
    body = _body(raw, _NUMBERED, "a feed cursor")
    if len(body) < 13:
        raise InvalidCursor("a feed cursor holds a time, a count and an activity id")
    return (int.from_bytes(body[:8], "big", signed=True), _text(body[12:])), int.from_bytes(body[8:12], "big")


def group_cursor(key: Key) -> str:
    return feed_cursor(key, _GROUP)


def decode_group_cursor(text: str) -> Key:
    return decode_feed_cursor(text, _GROUP)


def user_cursor(user: str) -> str:
    return _encode(_USER, user.encode())


def decode_user_cursor(text: str) -> str:
    return _text(_body(_raw(text), _USER, "a user list cursor"))


def _encode(tag: int, body: bytes) -> str:
    return base64.urlsafe_b64encode(bytes((VERSION, tag)) + body).rstrip(b"=").decode()


def _raw(text: str) -> bytes:
    """The bytes of a cursor this build can read (its version checked, its tag not yet)."""
    if len(text) > MAX_CURSOR_CHARS or not _ALPHABET.fullmatch(text):
        raise InvalidCursor(f"must be the `next` value of a previous page (base64url, at most {MAX_CURSOR_CHARS} "
                            "characters)")
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidCursor("is not base64url") from None
    if len(raw) < 2 or base64.urlsafe_b64encode(raw).rstrip(b"=").decode() != text:  # not canonical
        raise InvalidCursor("must be the `next` value of a previous page")
    if raw[0] != VERSION:
        raise InvalidCursor(f"has version {raw[0]}; this build reads version {VERSION}")
    return raw


def _body(raw: bytes, tag: int, what: str) -> bytes:
    """What follows the tag of ``raw``, when it is ``tag``."""
    if raw[1] != tag:
        raise InvalidCursor(f"is not {what}")
    return raw[2:]


def _text(body: bytes) -> str:
    if not body or len(body) > MAX_ID_BYTES:
        raise InvalidCursor(f"names an id of 1 to {MAX_ID_BYTES} bytes")
    try:
        return body.decode()
    except UnicodeDecodeError:
        raise InvalidCursor("names an id that is not UTF-8") from None
