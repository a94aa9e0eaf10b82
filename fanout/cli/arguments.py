"""Argument types of the ``fanout`` command: each refuses a bad value in argparse's one line
(``fanout CMD: error: argument X: ...``, exit 2) before any server is asked."""

from __future__ import annotations

import argparse
from collections.abc import Callable

from fanout.codec import MAX_ID_BYTES


def identifier(text: str) -> str:
    """A user or activity id as events and the HTTP API take it: 1 to ``MAX_ID_BYTES`` bytes of UTF-8."""
    size = len(text.encode(errors="surrogatepass"))
    if not 0 < size <= MAX_ID_BYTES:
        raise argparse.ArgumentTypeError(f"must be 1 to {MAX_ID_BYTES} bytes of UTF-8, not {size}")
    return text


def identifiers(text: str) -> list[str]:
    """A comma-separated list of ids (spaces around each ignored): at least one, each an ``identifier``."""
    ids = [identifier(part.strip()) for part in text.split(",") if part.strip()]
    if not ids:
        raise argparse.ArgumentTypeError("must name at least one id (A,B,C)")
    return ids


def _integer(text: str, low: int, high: int | None = None) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, not {text!r}") from None
    if value < low or (high is not None and value > high):
        rule = f"from {low} to {high}" if high is not None else f"{low} or more"
        raise argparse.ArgumentTypeError(f"must be {rule}, not {value}")
    return value


def at_least(low: int) -> Callable[[str], int]:
    """An integer of ``low`` or more."""

    def check(text: str) -> int:
        return _integer(text, low)

    return check


def positive(text: str) -> int:
    """An integer of 1 or more (a limit, a batch size)."""
    return _integer(text, 1)


def count(text: str) -> int:
    """An integer of 0 or more (a number of processes)."""
    return _integer(text, 0)


def port(text: str) -> int:
    """A TCP port to listen on, 1 to 65535."""
    return _integer(text, 1, 65_535)


def seconds(text: str) -> float:
    """A duration in seconds, 0 or more."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number of seconds, not {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be 0 or more seconds, not {text}")
    return value
