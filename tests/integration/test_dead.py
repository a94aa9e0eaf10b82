"""``fanout dead``: dead letters listed with their reasons and re-driven once their cause is fixed.

Events refused for a cause an operator can fix (times beyond ``FANOUT_MAX_FUTURE_SKEW_SECONDS``)
are re-driven after the setting is raised: they land, with the activity id a first success would
have given. Each dead letter is re-driven once, whatever the filters of later runs; a re-driven
record that fails again is a new dead letter. Chunk dead letters go back to their chunk topic.
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fanout.activity import derive_id, to_micros
from fanout.settings import Settings
from tests.integration.pipeline_helpers import (
    drain_all,
    feed_ids,
    pipeline,
    pipeline_settings,
    produce_raw,
    read_topic,
    run_cli,
)

pytestmark = pytest.mark.integration

SOON = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=1)  # beyond the default 600 s skew


async def _dead(settings: Settings, *args: str) -> str:
    done = await asyncio.to_thread(run_cli, settings, "dead", *args)
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _listed(settings: Settings, *args: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (await _dead(settings, "--json", *args)).splitlines()]


async def test_dead_letters_are_listed_and_redriven_once_when_fixed() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        await store.set_follow("fan", "ann", True, 1)
        chunk = {"op": "add", "priority": "high", "feeds": ["timeline:direct"], "write_ts": 1, "v": 2,
                 "activity": {"id": "c2", "actor": "ann", "verb": "pin", "object": "o", "ts": 1}}
        early = await produce_raw(settings, "activities", [
            (b"ann", json.dumps({"actor": "ann", "verb": "pin", "object": "soon", "time": SOON.isoformat()}).encode()),
            (b"ann", json.dumps({"actor": "ann", "verb": "pin", "object": "v2", "v": 2}).encode()),
            (b"ann", json.dumps({"actor": "ann", "verb": "pin", "object": "fine", "id": "ok"}).encode()),
        ])
        await produce_raw(settings, "follows", [
            (b"z", json.dumps({"follower": "z", "followee": "ann", "time": SOON.isoformat()}).encode())])
        await produce_raw(settings, "high", [(b"timeline:direct", json.dumps(chunk).encode())])
        await drain_all(settings, store)
        assert await feed_ids(store, "timeline:fan") == ["ok"]

        listed = await _listed(settings)
        assert sorted((d["agent"], d["reason"]) for d in listed) == [
            ("follows", "time"), ("planner", "time"), ("planner", "version"), ("writer-high", "version")]
        assert [d["agent"] for d in await _listed(settings, "--reason", "time", "--agent", "planner")] == ["planner"]
        assert await _listed(settings, "--since", "1h", "--until", "2000-01-01T00:00:00Z") == []
        assert len(await _listed(settings, "--since", "1h")) == 4
        table = await _dead(settings)
        assert "version" in table and "time" in table

        # the cause of the `time` ones is fixed: the skew allowed is raised
        fixed = settings.replace(max_future_skew_seconds=3 * 3600)
        assert "would re-drive 2" in await _dead(fixed, "--redrive", "--reason", "time", "--dry-run")
        assert "re-drove 2 dead letter(s)" in await _dead(fixed, "--redrive", "--reason", "time")
        assert "re-drove 0 dead letter(s) to their source topics (already re-driven: 2" in await _dead(
            fixed, "--redrive", "--reason", "time")
        await drain_all(fixed, store)
        soon_id = derive_id("ann", "pin", "soon", None, to_micros(SOON))
        assert await feed_ids(store, "timeline:fan") == [soon_id, "ok"]
        assert await store.following("z") == ["ann"]
        assert await feed_ids(store, "timeline:z") == [soon_id, "ok"]
        redriven = (await read_topic(settings, "activities", expected=4))[3]
        assert redriven.value == json.dumps(
            {"actor": "ann", "verb": "pin", "object": "soon", "time": SOON.isoformat()}).encode()
        assert redriven.timestamp == early[0].timestamp and redriven.key == b"ann"  # same record time, same id
        assert dict(redriven.headers)["fanout-redriven-from"].startswith(settings.topic("dead").encode())

        # the `version` ones fail again (no upgrade here): each becomes a new dead letter, re-driven once
        assert "re-drove 2 dead letter(s)" in await _dead(fixed, "--redrive")
        await drain_all(fixed, store)
        again = await _listed(fixed)
        assert sorted((d["reason"], d["redriven"]) for d in again) == [
            ("time", True), ("time", True), ("version", False), ("version", False),
            ("version", True), ("version", True)]
        assert {d["source"].split("[")[0] for d in again if not d["redriven"]} == {
            settings.topic("activities"), settings.topic("high")}  # the chunk went back to its chunk topic
        assert "re-drove 2 dead letter(s)" in await _dead(fixed, "--redrive")
        assert "re-drove 0" in await _dead(fixed, "--redrive")
        assert await feed_ids(store, "timeline:direct") == []


async def test_publish_prints_the_id_the_planner_derives_and_removes_by_id() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        await store.set_follow("fan", "ann", True, 1)
        pin = ("publish", "--actor", "ann", "--verb", "pin", "--object", "o1")
        added = await asyncio.to_thread(run_cli, settings, *pin)
        assert added.returncode == 0, added.stderr
        assert added.stdout.startswith("add activity ")
        derived = added.stdout.split()[2].rstrip(":")
        await drain_all(settings, store)
        assert await feed_ids(store, "timeline:fan") == [derived]  # no time: derived from the record time

        trap = await asyncio.to_thread(run_cli, settings, *pin, "--op", "remove")
        assert trap.returncode == 2 and "a remove needs `$.id`" in trap.stderr
        by_id = ("publish", "--actor", "ann", "--op", "remove", "--id", derived)
        removed = await asyncio.to_thread(run_cli, settings, *by_id)
        assert removed.returncode == 0, removed.stderr
        assert removed.stdout.startswith(f"remove activity {derived}:")
        await drain_all(settings, store)
        assert await feed_ids(store, "timeline:fan") == []
        assert await feed_ids(store, "user:ann") == []
        assert len(await read_topic(settings, "activities", expected=2)) == 2  # the trap sent nothing
