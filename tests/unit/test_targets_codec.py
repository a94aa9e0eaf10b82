"""The `to` field at the edges: codec, schema, producers' checks and `fanout publish` flags."""

from __future__ import annotations

import argparse

import pytest

from fanout import Fanout, InvalidEvent, MemoryStore, Settings
from fanout.cli.publish import _event_from_flags
from fanout.codec import check_event_time, decode_activity_event, json_schemas, to_activity


def _flags(**given: object) -> argparse.Namespace:
    fields = dict.fromkeys(("actor", "verb", "object", "target", "id", "op", "time", "to", "extra"))
    return argparse.Namespace(**{**fields, **given})


def test_targets_decode_deduplicated_into_the_activity() -> None:
    event = decode_activity_event(
        b'{"actor":"1","verb":"like","object":"p","to":["notification:7","x:a:b","notification:7"]}'
    )
    assert to_activity(event, 5).to == ("notification:7", "x:a:b")
    assert to_activity(decode_activity_event(b'{"actor":"1","verb":"v","object":"o"}'), 5).to is None


def test_the_schema_states_the_shape_of_a_target() -> None:
    to = json_schemas()["activity.v1.json"]["$defs"]["ActivityEvent"]["properties"]["to"]["anyOf"][0]
    assert to["maxItems"] == 100 and to["items"]["pattern"].startswith("^[^:]")


def test_publish_flags_and_producers_refuse_unknown_kinds_before_sending() -> None:
    settings = Settings()
    event = _event_from_flags(_flags(actor="1", verb="like", object="p", to=["notification:7"]), settings)
    assert event.to == ["notification:7"]
    with pytest.raises(InvalidEvent, match="inbox:7") as refused:
        _event_from_flags(_flags(actor="1", verb="like", object="p", to=["inbox:7"]), settings)
    assert refused.value.reason == "target"
    custom = Settings(feed_kinds=("timeline", "inbox"))
    assert check_event_time(event, custom) is event
    remove = decode_activity_event(b'{"actor":"1","op":"remove","id":"a","to":["inbox:7"]}')
    assert check_event_time(remove, settings) is remove  # a remove's targets are the add's: not checked


async def test_another_users_user_feed_is_no_target() -> None:
    # a post of `attacker` in `user:victim` would be copied by every follow of victim (the user feed
    # is the source follows copy) and stay there: its remove reaches the attacker's followers only
    settings = Settings(feed_kinds=("timeline", "aggregated"))
    with pytest.raises(InvalidEvent, match="own user's posts only") as refused:
        _event_from_flags(_flags(actor="attacker", verb="pin", object="spam", to=["user:victim"]), settings)
    assert refused.value.reason == "target"
    async with Fanout(MemoryStore(), settings) as fanout:
        await fanout.add(actor="victim", verb="pin", object="own")
        with pytest.raises(InvalidEvent, match="own user's posts only"):
            await fanout.add(actor="attacker", verb="pin", object="spam", to=["user:victim", "notification:victim"])
        await fanout.follow("fan", "victim")
        assert [a.actor for a in await fanout.read("victim", kind="user")] == ["victim"]
        assert [a.actor for a in await fanout.read("fan")] == ["victim"]

