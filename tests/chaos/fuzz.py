"""Bad events of every kind the issue lists, and what must become of each.

Each ``Kind`` makes records for one topic and says what the contract promises for them:

* ``dead``    the record is copied to the dead-letter topic with a reason (``reasons``: the ones
              the docs fix for it, or any non-empty reason when they do not);
* ``refused`` the broker refuses the record at produce time (over its message size limit);
* ``either``  the contract lets the product accept it or dead-letter it (times far from now,
              which it may bound); accepted ones must land like valid events and read back.

Unknown fields are ``dead`` or valid as the JSON Schema says (``additionalProperties``), so the
suite follows the contract if it becomes forward compatible.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any

Make = Callable[[random.Random, int], tuple[str, bytes | None]]  # -> (key, value)

#: Under the broker's default message.max.bytes (1048588): accepted, but its dead letter (value plus
#: headers) is not, so it must be dead-lettered truncated, with its size.
NEAR_LIMIT = 1_048_000
OVER_LIMIT = 1_200_000
AUTHORS = ("fa0", "fa1", "fa2")
FOREIGN_ID = "fa1/base0"  # an activity of fa1 (the prologue adds it): others may not use its id


@dataclass(frozen=True)
class Kind:
    name: str
    topic: str
    make: Make
    fate: str = "dead"  # dead | refused | either | valid (unknown fields, when the schema allows them)
    reasons: frozenset[str] = frozenset()  # empty: any non-empty reason
    weight: float = 1.0  # share of the bad events (heavy kinds get fewer)
    cap: int = 0  # at most this many (0: no cap)


def _add(rng: random.Random, n: int, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"actor": rng.choice(AUTHORS), "verb": "pin", "object": f"o{n}", "id": f"bad/{n}"}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not _DROP}


_DROP = object()


class Raw(str):
    """JSON text spliced into a document as is (nesting deeper than ``json`` can encode)."""


def nested(depth: int) -> Raw:
    return Raw('{"a":' * depth + "1" + "}" * depth)


def _j(doc: Any) -> bytes:
    """``doc`` as UTF-8 JSON; ``Raw`` values anywhere in it are spliced in verbatim."""
    raws: list[Raw] = []

    def mark(value: Any) -> Any:
        if isinstance(value, Raw):
            raws.append(value)
            return f"@@raw{len(raws) - 1}@@"
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        return value

    text = json.dumps(mark(doc), ensure_ascii=False)
    for i, raw in enumerate(raws):
        text = text.replace(f'"@@raw{i}@@"', raw)
    return text.encode("utf-8", "surrogatepass")


def forbids_unknown_fields(schema_file: str) -> bool:
    """What the contract (schemas/*.json) says about unknown fields."""
    doc = json.loads(resources.files("fanout.schemas").joinpath(schema_file).read_text())
    ref = doc.get("$ref", "")
    if ref.startswith("#/$defs/"):
        doc = doc["$defs"][ref.removeprefix("#/$defs/")]
    return doc.get("additionalProperties", True) is False


def _pick(rng: random.Random, options: list[bytes]) -> bytes:
    return rng.choice(options)


def _one_of(rng: random.Random, options: list[dict[str, Any]]) -> dict[str, Any]:
    return rng.choice(options)


def _activity_kinds() -> list[Kind]:
    unknown = "dead" if forbids_unknown_fields("activity.v1.json") else "valid"
    garbage = [b"hello", b"{", b'{"actor":"fa0",', b"{'actor': 'fa0'}", b'{"actor":"fa0",}', b"\x00\x01\x02",
               b"", b'{"actor":"fa0","verb":"pin","object":"o"}{}', b"NaN"]
    return [
        Kind("json-garbage", "activities", lambda r, n: ("fa0", _pick(r, garbage)), reasons=frozenset({"json"})),
        Kind("json-not-object", "activities", lambda r, n: ("fa0", _pick(r, [b"[]", b"42", b'"s"', b"null", b"true"]))),
        Kind("utf8-invalid", "activities", lambda r, n: ("fa0", r.choice([
            b'{"actor":"fa0","verb":"pin","object":"\xff\xfe"}',
            b'{"actor":"fa\xc3","verb":"pin","object":"o"}',
            b'{"actor":"fa0","verb":"pin","object":"o","extra":{"t":"\xed\xa0\x80"}}',
        ]))),
        Kind("utf8-surrogate", "activities", lambda r, n: ("fa0", r.choice([
            b'{"actor":"\\ud800","verb":"pin","object":"o"}',
            b'{"actor":"fa0","verb":"pin","object":"o","id":"x\\udfff"}',
            b'{"actor":"fa0","verb":"pin","object":"o","extra":{"k":"\\udc80"}}',
        ]))),
        Kind("wrong-type", "activities", lambda r, n: ("fa0", _j(_add(r, n, **_one_of(r, [
            {"actor": 5}, {"verb": True}, {"object": []}, {"target": {}}, {"time": 12345}, {"time": "yesterday"},
            {"extra": [1]}, {"extra": "x"}, {"id": 7}, {"op": "delete"}, {"op": 1},
        ])))), reasons=frozenset({"schema"})),
        Kind("version", "activities", lambda r, n: ("fa0", _j(_add(r, n, v=r.choice([2, 3, 99])))),
             reasons=frozenset({"version"})),
        Kind("version-string", "activities", lambda r, n: ("fa0", _j(_add(r, n, v="1")))),
        Kind("missing-field", "activities", lambda r, n: ("fa0", _j(r.choice([
            _add(r, n, actor=_DROP), _add(r, n, verb=_DROP), _add(r, n, object=_DROP), {},
        ]))), reasons=frozenset({"schema"})),
        Kind("unknown-field", "activities", lambda r, n: ("fa0", _j(_add(r, n, colour="red", time=_recent(r)))),
             fate=unknown),
        Kind("empty-or-null", "activities", lambda r, n: ("fa0", _j(_add(r, n, **_one_of(r, [
            {"actor": ""}, {"verb": ""}, {"object": ""}, {"target": ""}, {"id": ""}, {"actor": None}, {"verb": None},
        ])))), reasons=frozenset({"schema"})),
        Kind("tombstone", "activities", lambda r, n: ("fa0", None)),
        Kind("deep-extra", "activities", lambda r, n: ("fa0", _j(_add(r, n, extra=nested(r.choice([200, 1000])))))),
        Kind("deep-json", "activities", lambda r, n: ("fa0", b"[" * 20_000 + b"]" * 20_000), weight=0.3),
        Kind("deep-unknown", "activities", lambda r, n: ("fa0", _j(_add(r, n, x=nested(3000))))),
        Kind("long-id", "activities", lambda r, n: ("fa0", _j(_add(r, n, **_one_of(r, [
            {"actor": "a" * 257}, {"object": "é" * 129}, {"id": "i" * 300}, {"target": "ü" * 200}, {"verb": "v" * 1000},
        ])))), reasons=frozenset({"schema", "oversize"})),
        Kind("huge-extra", "activities", lambda r, n: ("fa0", _j(_add(r, n, extra={"s": "x" * 17_000}))),
             reasons=frozenset({"oversize"})),
        Kind("oversize-event", "activities", lambda r, n: ("fa0", _j(_add(r, n, zzz="x" * 70_000))),
             reasons=frozenset({"oversize"}), weight=0.2),
        Kind("near-broker-limit", "activities", lambda r, n: ("fa0", b'{"actor":"' + b"x" * NEAR_LIMIT + b'"}'),
             cap=3),
        Kind("over-broker-limit", "activities", lambda r, n: ("fa0", b'{"actor":"' + b"x" * OVER_LIMIT + b'"}'),
             fate="refused", cap=2),
        Kind("time-invalid", "activities", lambda r, n: ("fa0", _j(_add(r, n, time=r.choice([
            "2024-13-01T00:00:00Z", "2024-02-30T00:00:00Z", "2024-01-01T00:00:00", "2024-01-01", "12:00:00Z",
            "2024-01-01T25:00:00Z",
        ])))), reasons=frozenset({"schema", "time"})),
        Kind("time-extreme", "activities", lambda r, n: (AUTHORS[2], _j(_add(r, n, actor=AUTHORS[2], time=r.choice([
            "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "3500-01-01T00:00:00Z",
            "1900-01-01T00:00:00Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
        ])))), fate="either"),
        Kind("remove-without-id-or-time", "activities", lambda r, n: ("fa0", _j(
            {"actor": "fa0", "verb": "pin", "object": f"o{n}", "op": "remove"}))),
        Kind("conflict-add", "activities", lambda r, n: ("fa0", _j(_add(r, n, actor="fa0", id=FOREIGN_ID))),
             reasons=frozenset({"conflict"})),
        Kind("conflict-remove", "activities", lambda r, n: ("fa0", _j(
            {"actor": "fa0", "verb": "pin", "object": "o", "op": "remove", "id": FOREIGN_ID})),
             reasons=frozenset({"conflict"})),
        Kind("follow-on-activities", "activities", lambda r, n: ("ff0", _j({"follower": "ff0", "followee": "fa0"}))),
    ]


def _recent(rng: random.Random) -> str:
    return f"2026-01-{rng.randint(10, 28):02d}T12:00:{rng.randint(10, 59)}Z"


def _follow(rng: random.Random, **fields: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {"follower": f"ff{rng.randrange(20)}", "followee": rng.choice(AUTHORS), "op": "follow"}
    doc.update(fields)
    return {k: v for k, v in doc.items() if v is not _DROP}


def _follow_kinds() -> list[Kind]:
    unknown = "dead" if forbids_unknown_fields("follow.v1.json") else "valid"
    return [
        Kind("follow-garbage", "follows", lambda r, n: ("ff0", _pick(r, [b"{", b"follow", b'{"follower":"ff0"'])),
             reasons=frozenset({"json"})),
        Kind("follow-self", "follows", lambda r, n: ("ff1", _j({"follower": "ff1", "followee": "ff1"}))),
        Kind("follow-wrong", "follows", lambda r, n: ("ff0", _j(r.choice([
            _follow(r, op="block"), _follow(r, follower=5), _follow(r, followee=_DROP), _follow(r, follower=""),
            _follow(r, followee=None), _follow(r, time="soon"), _follow(r, v="1"), _follow(r, v=2),
        ])))),
        Kind("follow-utf8", "follows", lambda r, n: ("ff0", r.choice([
            b'{"follower":"ff\xff","followee":"fa0"}', b'{"follower":"\\udc80","followee":"fa0"}',
        ]))),
        Kind("follow-long-id", "follows", lambda r, n: ("ff0", _j(r.choice([
            _follow(r, follower="f" * 300), _follow(r, followee="é" * 129),
        ]))), reasons=frozenset({"schema", "oversize"})),
        Kind("follow-unknown-field", "follows", lambda r, n: ("gh0", _j(
            {"follower": "gh0", "followee": "ghost", "mood": "happy"})), fate=unknown),
        Kind("follow-deep", "follows", lambda r, n: ("ff0", _j(_follow(r, x=nested(3000))))),
        Kind("follow-time-extreme", "follows", lambda r, n: (f"gh{n % 5}", _j(
            {"follower": f"gh{n % 5}", "followee": "ghost", "time": r.choice(
                ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", "3500-01-01T00:00:00Z"])})),
             fate="either"),
        Kind("activity-on-follows", "follows", lambda r, n: ("fa0", _j(_add(r, n)))),
    ]


def _chunk(rng: random.Random, n: int, **fields: Any) -> dict[str, Any]:
    activity = {"id": f"forged/{n}", "actor": "forger", "verb": "pin", "object": "o", "ts": 1_760_000_000_000_000}
    doc: dict[str, Any] = {"op": "add", "priority": "high", "activity": activity,
                           "feeds": [f"timeline:forged{n % 7}"], "write_ts": 1_760_000_000_000_000}
    doc.update(fields)
    return doc


def _chunk_kinds(topic: str) -> list[Kind]:
    def forged(r: random.Random, n: int) -> dict[str, Any]:
        base = _chunk(r, n)
        return r.choice([
            {**base, "feeds": ["timeline:" + "x" * 70_000]},
            {**base, "write_ts": r.choice([2**63, -(2**63), 2**64, 2**63 - 1])},
            {**base, "activity": {**base["activity"], "ts": r.choice([-(2**63), 2**63 - 1])}},
            {**base, "activity": {**base["activity"], "extra": nested(2000)}},
            {**base, "feeds": ["timeline:\udc80"]},
            {**base, "v": 2},
        ])

    return [
        Kind(f"chunk-garbage-{topic}", topic, lambda r, n: ("k", _pick(r, [b"nope", b"{", b"[]"]))),
        Kind(f"chunk-schema-{topic}", topic, lambda r, n: ("k", _j(r.choice([
            {"op": "add"}, _chunk(r, n, feeds="timeline:x"), _chunk(r, n, op="upsert"), _chunk(r, n, activity={}),
        ])))),
        Kind(f"chunk-store-rejects-{topic}", topic, lambda r, n: ("k", _j(forged(r, n))), weight=0.5),
        Kind(f"chunk-utf8-{topic}", topic, lambda r, n: ("k", _j(_chunk(r, n)).replace(b"forger", b"forg\xff"))),
    ]


def kinds() -> list[Kind]:
    return [*_activity_kinds(), *_follow_kinds(), *_chunk_kinds("high"), *_chunk_kinds("low")]


def plan(rng: random.Random, total: int) -> list[tuple[Kind, str, bytes | None]]:
    """At least ``total`` bad records, every kind among them, shuffled: (kind, key, value)."""
    all_kinds = kinds()
    capped = sum(k.cap for k in all_kinds if k.cap)
    weights = sum(k.weight for k in all_kinds if not k.cap)
    out: list[tuple[Kind, str, bytes | None]] = []
    for kind in all_kinds:
        count = kind.cap or math.ceil((total - capped) * kind.weight / weights)
        for _ in range(count):
            key, value = kind.make(rng, len(out))
            out.append((kind, key, value))
    rng.shuffle(out)
    return out
