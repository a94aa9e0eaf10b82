"""The JSON Schema files in schemas/ are the codecs' own schemas: they must not drift."""

from __future__ import annotations

import json

from fanout import schemas
from fanout.cli import main
from fanout.codec import json_schemas


def test_schema_files_match_the_codecs() -> None:
    generated = json_schemas()
    assert sorted(generated) == schemas.names()
    for name, document in generated.items():
        assert schemas.load(name) == json.loads(json.dumps(document)), f"run `fanout schemas --write` ({name})"


def test_schemas_check_command_passes() -> None:
    assert main(["schemas", "--check"]) == 0


def test_activity_schema_states_the_contract() -> None:
    doc = schemas.load("activity.v1.json")
    body = doc["$defs"]["ActivityEvent"]
    assert body["required"] == ["actor"]
    assert body["else"]["required"] == ["verb", "object"]  # an add
    assert body["if"]["properties"]["op"] == {"const": "remove"}
    assert "additionalProperties" not in body  # unknown fields are ignored (forward compatible)
    assert body["properties"]["actor"]["maxLength"] == 256
    assert body["properties"]["op"]["enum"] == ["add", "remove"]
