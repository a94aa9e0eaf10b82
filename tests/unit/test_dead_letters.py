"""``fanout dead`` without Kafka: time arguments, filters, and which letters a re-drive skips."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

import pytest

from fanout import ConfigError, Settings
from fanout.agents.dead import REDRIVEN_OF, DeadLetter, Filters, dead_letters_of
from fanout.cli.dead import _doc, parse_time

NOW = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)


class Record(NamedTuple):
    partition: int
    offset: int
    timestamp: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]


def _letter(offset: int, reason: str, agent: str = "planner", ts: int = 1000, more: dict[str, str] | None = None,
            ) -> Record:
    headers = {"fanout-reason": reason, "fanout-agent": agent, "fanout-source-topic": "fanout.activities",
               **(more or {})}
    return Record(0, offset, ts, b"k", b"{}", [(k, v.encode()) for k, v in headers.items()])


def test_times_are_rfc3339_or_a_duration_ago() -> None:
    assert parse_time("2026-05-01T10:00:00Z", NOW) == int(datetime(2026, 5, 1, 10, tzinfo=UTC).timestamp() * 1000)
    assert parse_time("2h", NOW) == parse_time("2026-05-01T10:00:00+00:00", NOW)
    assert parse_time("7d", NOW) == parse_time("2026-04-24T12:00:00Z", NOW)
    for bad in ("yesterday", "2026-05-01T10:00:00", "2w"):
        with pytest.raises(ConfigError, match="is not a time"):
            parse_time(bad, NOW)


def test_filters_and_markers() -> None:
    records: list[Any] = [_letter(0, "version"), _letter(1, "time", "follows", ts=5000),
                          _letter(2, "oversize", more={"fanout-truncated": "true"}),
                          Record(0, 3, 6000, b"fanout-redriven", None, [(REDRIVEN_OF, b"0:0")])]
    letters = dead_letters_of(records)
    assert [(d.offset, d.redriven) for d in letters] == [(0, True), (2, False), (1, False)]  # oldest first
    assert [d.offset for d in letters if Filters(reasons=frozenset({"time"})).matches(d)] == [1]
    assert [d.offset for d in letters if Filters(agents=frozenset({"planner"}), until_ms=2000).matches(d)] == [0, 2]
    assert [d.offset for d in letters if Filters(since_ms=2000).matches(d)] == [1]
    settings = Settings()
    assert [d.why_not_redrivable(settings) for d in letters] == ["", "truncated", ""]
    elsewhere = dead_letters_of([_letter(9, "json", more={"fanout-source-topic": "other.topic"})])[0]
    assert elsewhere.why_not_redrivable(settings) == "unknown source topic"


def test_the_json_listing_tells_a_tombstone_and_a_record_without_key_from_empty_ones() -> None:
    headers = {"fanout-reason": "json", "fanout-agent": "planner"}
    absent = _doc(DeadLetter(0, 1, 0, None, None, headers))
    empty = _doc(DeadLetter(0, 2, 0, b"", b"", headers))
    assert (absent["key"], absent["value"], absent["size"]) == (None, None, 0)
    assert (empty["key"], empty["value"], empty["size"]) == ("", "", 0)
