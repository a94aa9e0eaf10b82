"""Path and query parameters: each parsed and checked in one place, errors naming the parameter."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, TypeVar
from urllib.parse import unquote_to_bytes

from starlette.requests import Request

from fanout.codec import MAX_ID_BYTES
from fanout.store import Key

from .cursors import InvalidCursor, decode_group_cursor, decode_position_cursor, decode_user_cursor
from .problems import Problem, invalid_parameter

DEFAULT_LIMIT: Final = 25
T = TypeVar("T")


def query(request: Request, *allowed: str) -> dict[str, str]:
    """The query parameters, each at most once and each one of ``allowed``."""
    found: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name not in allowed:
            known = ", ".join(f"`{a}`" for a in allowed) or "none"
            raise invalid_parameter(name, "unknown parameter", f"unknown query parameter `{name}` (known: {known})")
        if name in found:
            raise invalid_parameter(name, "at most once", f"query parameter `{name}` is given more than once")
        found[name] = value
    return found


def path_id(request: Request, name: str) -> str:
    """A user or activity id from the path: 1 to 256 bytes of UTF-8."""
    value: str = request.path_params[name]
    if not value or len(value.encode(errors="surrogatepass")) > MAX_ID_BYTES:
        raise invalid_parameter(name, f"1 to {MAX_ID_BYTES} bytes of UTF-8")
    if "\ufffd" in value and not _utf8_path(request):  # the server put U+FFFD for each byte that was not UTF-8
        raise invalid_parameter(name, "valid UTF-8")
    return _utf8(name, value)


def _utf8_path(request: Request) -> bool:
    """Whether the path as sent (%-escapes decoded) is UTF-8: `%FF` and `%C0` would both read as
    the id "\ufffd" otherwise, one user for two ids."""
    try:
        unquote_to_bytes(request.scope.get("raw_path", b"")).decode()
    except UnicodeDecodeError:
        return False
    return True


def required_id(params: dict[str, str], name: str) -> str:
    value = params.get(name)
    if value is None:
        raise invalid_parameter(name, "required", f"query parameter `{name}` is required")
    if not value or len(value.encode(errors="surrogatepass")) > MAX_ID_BYTES:
        raise invalid_parameter(name, f"1 to {MAX_ID_BYTES} bytes of UTF-8")
    return _utf8(name, value)


def limit(params: dict[str, str], maximum: int) -> int:
    raw = params.get("limit")
    if raw is None:
        return min(DEFAULT_LIMIT, maximum)
    rule = f"an integer from 1 to {maximum}"
    if not raw.isascii() or not raw.isdigit() or len(raw) > 9:
        raise invalid_parameter("limit", rule)
    value = int(raw)
    if not 1 <= value <= maximum:
        raise invalid_parameter("limit", rule)
    return value


def feed_cursor(params: dict[str, str]) -> tuple[Key | None, int | None]:
    """Where a feed walk stands: the last key served (None: the first page) and how many entries
    it served (None: a cursor of an earlier build, which did not count)."""
    position = _cursor(params, decode_position_cursor)
    return (None, 0) if position is None else position


def group_cursor(params: dict[str, str]) -> Key | None:
    return _cursor(params, decode_group_cursor)


def user_cursor(params: dict[str, str]) -> str | None:
    return _cursor(params, decode_user_cursor)


def _cursor(params: dict[str, str], decode: Callable[[str], T]) -> T | None:
    raw = params.get("cursor")
    if raw is None:
        return None
    try:
        return decode(raw)
    except InvalidCursor as exc:
        raise invalid_parameter("cursor", str(exc), f"`cursor` {exc}") from None


def feed_kind(request: Request, kinds: tuple[str, ...]) -> str:
    kind: str = request.path_params["kind"]
    if kind not in kinds:
        raise Problem(404, "unknown-feed-kind", "No such feed kind",
                      f"feed kind {kind!r} is not one of {', '.join(kinds)}", field="kind", rule="one of " +
                      ", ".join(kinds))
    return kind


def _utf8(name: str, value: str) -> str:
    try:
        value.encode()
    except UnicodeEncodeError:  # a lone surrogate from a %-escape that is not UTF-8
        raise invalid_parameter(name, "valid UTF-8") from None
    return value
