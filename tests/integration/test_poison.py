"""Poison records sent by a bare Kafka producer to running agents (issue 11, item 3).

Each kind of record that used to crash-loop a worker (invalid UTF-8 inside a JSON string, JSON
nested past the interpreter's recursion limit, a record so close to the broker's 1 MiB limit that
its dead letter does not fit, forged chunk messages that decode but that Cassandra or its driver
would reject) and each time the contract refuses: every one is dead-lettered with its reason, no
agent stops, the valid events around them land, and reading the feeds still works.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fanout.activity import to_micros
from fanout.settings import Settings
from tests.integration.pipeline_helpers import (
    InProcess,
    feed_ids,
    pipeline,
    pipeline_settings,
    produce_raw,
    read_topic,
    record_headers,
    run_cli,
    wait_drained,
)

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC).replace(microsecond=0)
BROKER_LIMIT = 1_048_588  # the broker's default message.max.bytes (a record batch)


def _at(hours: float) -> str:
    return (NOW + timedelta(hours=hours)).isoformat()


def _activity(**fields: Any) -> bytes:
    return json.dumps({"actor": "ann", "verb": "pin", "object": "p", **fields}).encode()


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"1" + b"]" * depth


def _chunk(feeds: list[str], write_ts: int | None = None, **activity: Any) -> bytes:
    body = {"id": "c-ok", "actor": "ann", "verb": "pin", "object": "p", "ts": to_micros(NOW), **activity}
    return json.dumps({"op": "add", "priority": "high", "activity": body, "feeds": feeds,
                       "write_ts": body["ts"] if write_ts is None else write_ts}).encode()


def _near_the_limit() -> bytes:
    head = b'{"actor":"ann","verb":"pin","object":"p","extra":{"blob":"'
    return head + b"x" * (BROKER_LIMIT - 300 - len(head)) + b'"}}'


POISON_ACTIVITIES: list[tuple[str, bytes, str]] = [
    ("invalid UTF-8", b'{"actor":"ann\xff","verb":"pin","object":"p"}', "json"),
    ("invalid UTF-8 in extra", b'{"actor":"ann","verb":"pin","object":"p","extra":{"k":"\xc3("}}', "json"),
    ("a 6 KB extra 3000 levels deep", b'{"actor":"ann","verb":"pin","object":"p","extra":{"k":'
     + _deep(3_000) + b"}}", "oversize"),
    ("an unknown field 20000 levels deep", b'{"actor":"ann","verb":"pin","object":"p","x":' + _deep(20_000) + b"}",
     "oversize"),
    ("near the broker's limit", _near_the_limit(), "oversize"),
    ("v as a string", _activity(id="bad-v", v="1"), "schema"),
    ("a newer version", _activity(id="v2", v=2, newer={"field": 1}), "version"),
    ("year 0 in UTC", _activity(time="0001-01-01T00:30:00+01:00"), "time"),
    ("year 10000 in UTC", _activity(time="9999-12-31T23:30:00-01:00"), "time"),
    ("year 4000", _activity(time="4000-01-01T00:00:00Z"), "time"),
    ("a day ahead", _activity(time=_at(24)), "time"),
    ("the remove trap", _activity(op="remove"), "schema"),
]
POISON_FOLLOWS: list[tuple[str, bytes, str]] = [
    ("invalid UTF-8", b'{"follower":"z\xff","followee":"ann"}', "json"),
    ("deep", b'{"follower":"z","followee":"ann","x":' + _deep(20_000) + b"}", "oversize"),
    ("year 4000", b'{"follower":"z","followee":"ann","time":"4000-01-01T00:00:00Z"}', "time"),
]
POISON_CHUNKS: list[tuple[str, bytes, str]] = [
    ("a feed key over 64 KiB", _chunk(["timeline:" + "k" * 70_000]), "oversize"),
    ("write_ts -2^63", _chunk(["timeline:direct"], write_ts=-(2**63)), "schema"),
    ("write_ts 2^63", _chunk(["timeline:direct"], write_ts=2**63), "schema"),
    ("write_ts above the add band", _chunk(["timeline:direct"], write_ts=2**60), "schema"),
    ("invalid UTF-8", _chunk(["timeline:direct"]).replace(b'"ann"', b'"ann\xed\xa0\x80"'), "json"),
    ("deep", _chunk(["timeline:direct"], extra={"k": 1}).replace(b'{"k": 1}', b'{"k":' + _deep(3_000) + b"}"),
     "oversize"),
]


async def _drained_or_crashed(settings: Settings, agents: list[InProcess], within: float) -> None:
    drained = asyncio.ensure_future(wait_drained(settings, within=within))
    try:
        while not drained.done():
            for agent in agents:
                if agent.task.done():
                    agent.task.result()  # raises what crashed it
                    raise AssertionError(f"{agent.agent.role} stopped")
            await asyncio.sleep(0.2)
        drained.result()
    finally:
        drained.cancel()


async def test_poison_records_are_dead_lettered_and_the_agents_keep_going() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        await store.set_follow("fan", "ann", True, to_micros(NOW - timedelta(days=1)))
        agents = [InProcess(settings, store, "planner"), InProcess(settings, store, "follows"),
                  InProcess(settings, store, "writer", "high"), InProcess(settings, store, "writer", "low")]
        try:
            activities = [(b"ann", _activity(id="ok-1", time=_at(-3)))]
            activities += [(b"ann", value) for _, value, _ in POISON_ACTIVITIES]
            activities += [(b"ann", _activity(id="ok-compat", time=_at(-2), colour="red", tags=["new"])),
                           (b"ann", _activity(id="ok-2", time=_at(-1)))]
            activity_metas = await produce_raw(settings, "activities", activities)
            follow_metas = await produce_raw(
                settings, "follows",
                [(b"z", value) for _, value, _ in POISON_FOLLOWS]
                + [(b"z", b'{"follower":"z","followee":"ann","time":"' + _at(-4).encode() + b'"}')])
            chunks = [(b"k", value) for _, value, _ in POISON_CHUNKS] + [(b"k", _chunk(["timeline:direct"]))]
            chunk_metas = await produce_raw(settings, "high", chunks)
            low_metas = await produce_raw(settings, "low", [(b"k", _chunk(["timeline:l"], write_ts=2**63))])
            await _drained_or_crashed(settings, agents, within=90)

            assert await feed_ids(store, "timeline:fan") == ["ok-2", "ok-compat", "ok-1"]
            assert await feed_ids(store, "timeline:z") == ["ok-2", "ok-compat", "ok-1"]
            assert await feed_ids(store, "timeline:direct") == ["c-ok"]

            expected = [(settings.topic("activities"), meta.offset, name, reason, value)
                        for (name, value, reason), meta in zip(POISON_ACTIVITIES, activity_metas[1:-2], strict=True)]
            expected += [(settings.topic("follows"), meta.offset, name, reason, value)
                         for (name, value, reason), meta in zip(POISON_FOLLOWS, follow_metas, strict=False)]
            expected += [(settings.topic("high"), meta.offset, name, reason, value)
                         for (name, value, reason), meta in zip(POISON_CHUNKS, chunk_metas, strict=False)]
            expected.append((settings.topic("low"), low_metas[0].offset, "low write_ts 2^63", "schema", b""))
            dead = await read_topic(settings, "dead", expected=len(expected))
            assert len(dead) == len(expected)
            by_source = {(h["fanout-source-topic"], int(h["fanout-source-offset"])): (h, r)
                         for r in dead for h in [record_headers(r)]}
            for topic, offset, name, reason, value in expected:
                headers, record = by_source[(topic, offset)]
                assert headers["fanout-reason"] == reason, (name, headers)
                if name == "near the broker's limit":
                    assert headers["fanout-truncated"] == "true"
                    assert int(headers["fanout-original-size"]) == len(value)
                    assert value.startswith(record.value) and len(record.value) < len(value)
                elif value:
                    assert record.value == value, name
            assert all(not a.task.done() for a in agents)
        finally:
            for a in agents:
                await a.close()

        for user in ("fan", "z"):
            read = await asyncio.to_thread(run_cli, settings, "feed", user, "--json")
            assert read.returncode == 0, read.stderr
            assert [json.loads(line)["id"] for line in read.stdout.splitlines()] == ["ok-2", "ok-compat", "ok-1"]
