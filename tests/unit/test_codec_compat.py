"""Forward compatibility of the wire contract (agents/README.md, "Compatibility").

Producers may add fields before the consumers are upgraded: unknown fields are ignored, never a
reason to drop an event. A version this build cannot read (``v`` > 1) is a dead letter with
reason ``version``, to be re-driven after the upgrade. A ``v`` of the wrong type says so.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fanout import schemas
from fanout.codec import decode_activity_event, decode_chunk, decode_follow_event, to_activity
from fanout.errors import InvalidEvent, UnknownVersion

ACTIVITY: dict[str, Any] = {"actor": "a", "verb": "pin", "object": "o", "time": "2026-01-01T00:00:00Z"}
FOLLOW: dict[str, Any] = {"follower": "a", "followee": "b"}
CHUNK: dict[str, Any] = {
    "op": "add", "priority": "low", "feeds": ["timeline:f"], "write_ts": 1_700_000_000_000_000,
    "activity": {"id": "x", "actor": "a", "verb": "pin", "object": "o", "ts": 1_700_000_000_000_000},
}


def _json(doc: dict[str, Any], **more: Any) -> bytes:
    return json.dumps({**doc, **more}).encode()


def test_unknown_fields_are_ignored() -> None:
    plain = decode_activity_event(_json(ACTIVITY))
    newer = decode_activity_event(_json(ACTIVITY, colour="red", audience={"lists": [1, 2]}, tags=None))
    assert newer == plain
    assert to_activity(newer, 0).id == to_activity(plain, 0).id  # same derived id
    assert decode_follow_event(_json(FOLLOW, source="import")) == decode_follow_event(_json(FOLLOW))
    assert decode_chunk(_json(CHUNK, trace="t-1")) == decode_chunk(_json(CHUNK))
    nested = dict(CHUNK, activity={**CHUNK["activity"], "lang": "en"})
    assert decode_chunk(_json(nested)) == decode_chunk(_json(CHUNK))


def test_unknown_fields_still_count_towards_the_size_limit() -> None:
    with pytest.raises(InvalidEvent, match="over the limit") as caught:
        decode_activity_event(_json(ACTIVITY, padding="x" * 70_000))
    assert caught.value.reason == "oversize"


@pytest.mark.parametrize("version", [2, 9, 10**6])
def test_a_newer_version_is_its_own_reason_even_when_it_would_not_decode(version: int) -> None:
    for data in (_json(ACTIVITY, v=version), _json({"actor": "a", "renamed": "pin"}, v=version)):
        with pytest.raises(UnknownVersion, match=f"has version {version}; this build reads version 1") as caught:
            decode_activity_event(data)
        assert caught.value.reason == "version"
    with pytest.raises(UnknownVersion):
        decode_follow_event(_json(FOLLOW, v=version))
    with pytest.raises(UnknownVersion):
        decode_chunk(_json(CHUNK, v=version))


@pytest.mark.parametrize("version", ['"1"', '"2"', "1.0", "true", "null", "[1]", '{"major": 1}'])
def test_a_version_of_the_wrong_type_says_it_must_be_an_integer(version: str) -> None:
    data = _json(ACTIVITY)[:-1] + b', "v": ' + version.encode() + b"}"
    with pytest.raises(InvalidEvent) as caught:
        decode_activity_event(data)
    assert not isinstance(caught.value, UnknownVersion)
    assert caught.value.reason == "schema"
    assert "`$.v` must be an integer" in str(caught.value)
    assert "this build reads version 1" not in str(caught.value)


@pytest.mark.parametrize("version", ["0", "-1"])
def test_a_version_below_one_is_a_schema_error(version: str) -> None:
    with pytest.raises(InvalidEvent, match=r"`\$.v`") as caught:
        decode_follow_event(_json(FOLLOW)[:-1] + b', "v": ' + version.encode() + b"}")
    assert caught.value.reason == "schema"


def test_the_schemas_allow_unknown_fields() -> None:
    for name, body in (("activity.v1.json", "ActivityEvent"), ("follow.v1.json", "FollowEvent"),
                       ("chunk.v1.json", "ChunkMessage")):
        assert schemas.load(name)["$defs"][body].get("additionalProperties", True) is not False, name
