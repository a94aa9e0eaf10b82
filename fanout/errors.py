"""The exceptions fanout raises. Everything derives from ``FanoutError``::

    FanoutError
    ├── ConfigError            a setting is invalid: fix the FANOUT_* variable it names
    ├── InvalidEvent           an event broke the wire contract (field and rule in the message);
    │   │                      the pipeline dead-letters it, the Python API raises it
    │   └── UnknownVersion     the event's "v" is not a version this build understands
    ├── UnknownActivity        a cursor or remove names an activity id the store never saw
    ├── ForeignActivity        bulk import got an activity of another actor
    └── StoreError             the timeline store failed; ``retriable`` says if a retry can help

Retry loops ask ``err.retriable`` instead of listing exception types; a command that ends on a
retriable error exits ``EXIT_UNAVAILABLE``.
"""

from __future__ import annotations

import re
from typing import Final

#: The exit status of a command that failed because a server (Kafka, Cassandra) is not reachable
#: or timed out: try again later (``EX_TEMPFAIL`` of sysexits.h). A bad setting, a refused
#: request or bad input exits 2. ``fanout worker all`` restarts a child that exits with it for as
#: long as it takes, where other failures in a row end in a crash loop.
EXIT_UNAVAILABLE: Final = 75


# A ``\uD800``-``\uDBFF`` escape (after an even run of backslashes) with no low-half escape after
# it, nor the start of one cut off by the end of the data (that is a truncation).
_UNPAIRED_SURROGATE: Final = re.compile(
    rb"(?<!\\)(?:\\\\)*\\u[dD][89abAB][0-9a-fA-F]{2}"
    rb"(?!\\u[dD][c-fC-F][0-9a-fA-F]{2}|\\(?:u(?:[dD](?:[c-fC-F][0-9a-fA-F]?)?)?)?\Z)")


def json_error(message: str, data: bytes) -> str:
    """msgspec's ``DecodeError`` text for ``data``, mended where it misleads: an unpaired
    surrogate escape near the end of the data reads "Input data was truncated"."""
    if message == "Input data was truncated" and _UNPAIRED_SURROGATE.search(data):
        return ("JSON is malformed: a \\uD800-\\uDBFF escape with no \\uDC00-\\uDFFF escape after it "
                "(an unpaired surrogate)")
    return message


class FanoutError(Exception):
    """Base class of every error fanout raises."""

    retriable: bool = False


class ConfigError(FanoutError):
    """A setting is invalid."""


class InvalidEvent(FanoutError):
    """An event does not match the wire contract in ``schemas/``."""

    def __init__(self, message: str, *, reason: str = "schema") -> None:
        super().__init__(message)
        self.reason = reason


class UnknownVersion(InvalidEvent):
    """The event's version field names a version this build does not understand."""

    def __init__(self, message: str) -> None:
        super().__init__(message, reason="version")


class UnknownActivity(FanoutError):
    """An activity id is not known to the store."""


class ForeignActivity(FanoutError):
    """An activity does not belong to the actor that imports it."""


class StoreError(FanoutError):
    """The timeline store failed."""

    def __init__(self, message: str, *, retriable: bool = True) -> None:
        super().__init__(message)
        self.retriable = retriable
