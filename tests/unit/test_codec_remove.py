"""The remove rule, in one place (the codec) for the pipeline, the producers and the CLI.

A remove names its activity by ``id``, or by the content and ``time`` of the add (which derive the
same id); a remove by id needs only ``actor`` and ``id``. A remove that can name nothing is refused
where it is produced, so it never reaches the planner to be dead-lettered while the activity stays
in every feed. The JSON Schema states the same rule.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from fanout import Fanout, MemoryStore, schemas
from fanout.activity import derive_id, to_micros
from fanout.cli import main
from fanout.codec import activity_event, decode_activity_event, remove_event
from fanout.errors import InvalidEvent
from fanout.producer import Producer

WHEN = "2026-01-01T00:00:00Z"
REMOVE_NEEDS = "a remove needs `$.id`, or `$.verb`, `$.object` and `$.time`"


def _decode(doc: dict[str, Any]) -> Any:
    return decode_activity_event(json.dumps(doc).encode())


def test_a_remove_by_id_needs_only_the_actor_and_the_id() -> None:
    event = _decode({"actor": "a", "id": "x1", "op": "remove"})
    assert (event.actor, event.id, event.verb, event.object) == ("a", "x1", None, None)
    assert remove_event("x1", actor="a") == event


def test_a_remove_by_content_needs_the_time_and_derives_the_add_id() -> None:
    from fanout.codec import removed_id

    add = _decode({"actor": "a", "verb": "pin", "object": "o", "target": "b", "time": WHEN})
    remove = _decode({"actor": "a", "verb": "pin", "object": "o", "target": "b", "time": WHEN, "op": "remove"})
    assert removed_id(remove) == derive_id("a", "pin", "o", "b", to_micros(add.time)) == removed_id(
        _decode({"actor": "a", "id": removed_id(remove), "op": "remove"}))


@pytest.mark.parametrize(
    "doc",
    [
        {"actor": "a", "verb": "pin", "object": "o", "op": "remove"},  # the trap: no id, no time
        {"actor": "a", "op": "remove"},
        {"actor": "a", "time": WHEN, "op": "remove"},
        {"actor": "a", "verb": "pin", "time": WHEN, "op": "remove"},
        {"actor": "a", "object": "o", "time": WHEN, "op": "remove"},
    ],
)
def test_a_remove_that_names_no_activity_is_refused(doc: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent, match=REMOVE_NEEDS.replace("$", r"\$")) as caught:
        _decode(doc)
    assert caught.value.reason == "schema"
    with pytest.raises(InvalidEvent, match="a remove needs"):
        activity_event(doc)  # what Producer, SyncProducer and `fanout publish` call


@pytest.mark.parametrize(("doc", "missing"), [({"actor": "a", "object": "o"}, "verb"),
                                              ({"actor": "a", "verb": "v", "op": "add"}, "object")])
def test_an_add_still_needs_verb_and_object(doc: dict[str, Any], missing: str) -> None:
    with pytest.raises(InvalidEvent, match=f"`\\$.{missing}`"):
        _decode(doc)


async def test_the_producer_refuses_it_before_sending() -> None:
    producer = Producer()  # never started: validation comes first, nothing reaches Kafka
    with pytest.raises(InvalidEvent, match="a remove needs"):
        await producer.send_activity(actor="a", verb="pin", object="o", op="remove")


@pytest.mark.parametrize(
    "flags",
    [
        ["--actor", "42", "--verb", "pin", "--object", "o", "--op", "remove"],
        ["--actor", "42", "--op", "remove"],
        ["--actor", "42", "--op", "remove", "--time", WHEN],
    ],
)
def test_cli_publish_remove_without_what_it_needs_exits_2_and_sends_nothing(
    flags: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FANOUT_KAFKA_BOOTSTRAP", "127.0.0.1:9")  # nothing listens: sending would fail
    assert main(["publish", *flags]) == 2
    err = capsys.readouterr().err
    assert "a remove needs `$.id`" in err
    assert "Traceback" not in err


# the JSON Schema says the same as the codec ------------------------------------------------------
names = st.sampled_from(["a", "pin", "o"])
docs = st.fixed_dictionaries(
    {"actor": names},
    optional={"verb": names, "object": names, "time": st.just(WHEN), "id": names,
              "op": st.sampled_from(["add", "remove"])},
)


@given(docs)
def test_the_schema_and_the_codec_agree_on_adds_and_removes(doc: dict[str, Any]) -> None:
    validator = jsonschema.Draft202012Validator(schemas.load("activity.v1.json"))
    try:
        _decode(doc)
        accepted = True
    except InvalidEvent:
        accepted = False
    assert validator.is_valid(doc) == accepted, doc


async def test_add_refuses_a_remove_and_remove_of_an_unknown_id_is_silent() -> None:
    async with Fanout(MemoryStore()) as fanout:
        with pytest.raises(InvalidEvent, match=r"Fanout\.remove"):
            await fanout.add({"actor": "x", "op": "remove", "id": "nope"})  # was a RuntimeError
        assert await fanout.remove("nope", actor="x") is None
