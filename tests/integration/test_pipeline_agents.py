"""Agents in one process against the real broker and Cassandra: dead letters, chunk order
independence, topic checks, the producer API and the lag report."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka.errors import KafkaConnectionError

from fanout.activity import REMOVED_WRITE_TS, Activity
from fanout.agents import group_id
from fanout.agents.supervisor import settings_env
from fanout.agents.topics import MissingTopics, check_topics, create_topics
from fanout.codec import ChunkMessage, encode
from fanout.producer import Producer, SyncProducer
from fanout.settings import Settings
from tests.integration.pipeline_helpers import (
    InProcess,
    feed_ids,
    lags,
    pipeline,
    pipeline_settings,
    produce_raw,
    read_topic,
    wait_drained,
)

pytestmark = pytest.mark.integration


def _headers(record: object) -> dict[str, str]:
    return {k: v.decode() for k, v in record.headers}  # type: ignore[attr-defined]


async def test_dead_letters_keep_the_valid_events_flowing() -> None:
    settings = pipeline_settings(max_event_bytes=8 * 1024)
    async with pipeline(settings) as store:
        await store.set_follow("fan", "ann", True, 1)
        agents = [
            InProcess(settings, store, "planner"),
            InProcess(settings, store, "follows"),
            InProcess(settings, store, "writer", "high"),
            InProcess(settings, store, "writer", "low"),
        ]
        try:
            good = {"actor": "ann", "verb": "pin", "object": "p1", "id": "good-1", "time": "2024-01-01T00:00:00Z"}
            broken = [
                (b"{not json", "json"),
                (json.dumps({"actor": "ann", "verb": "pin"}).encode(), "schema"),  # missing object
                (json.dumps({**good, "id": "v2", "v": 2}).encode(), "version"),
                (json.dumps({**good, "id": "big", "extra": {"x": "y" * 9000}}).encode(), "oversize"),
                (json.dumps({"actor": 5, "verb": "pin", "object": "p"}).encode(), "schema"),  # wrong type
                (json.dumps({**good, "id": "u", "v": "1"}).encode(), "schema"),  # a version that is no integer
                (json.dumps({**good, "actor": "bob"}).encode(), "conflict"),  # good-1 belongs to ann
                (None, "json"),  # a tombstone record
            ]
            records: list[tuple[bytes | None, bytes | None]] = [(b"ann", json.dumps(good).encode())]
            records += [(b"ann", value) for value, _ in broken]
            records.append((b"ann", json.dumps({**good, "id": "good-2", "object": "p2"}).encode()))
            metas = await produce_raw(settings, "activities", records)
            follow_metas = await produce_raw(settings, "follows", [
                (b"x", json.dumps({"follower": "x", "followee": "x"}).encode()),  # self-follow
                (b"y", json.dumps({"follower": "y", "followee": "ann", "op": "block"}).encode()),
                (b"z", json.dumps({"follower": "z", "followee": "ann"}).encode()),
            ])
            chunk_metas = await produce_raw(settings, "high", [(b"k", b'{"op": "add"}')])
            await wait_drained(settings, within=60)

            assert await feed_ids(store, "timeline:fan") == ["good-2", "good-1"]
            assert await feed_ids(store, "user:ann") == ["good-2", "good-1"]
            assert await feed_ids(store, "timeline:z") == ["good-2", "good-1"]  # the valid follow copied

            dead = await read_topic(settings, "dead", expected=len(broken) + 3)
            assert len(dead) == len(broken) + 3
            by_source = {(h["fanout-source-topic"], int(h["fanout-source-offset"])): (h, r)
                         for r in dead for h in [_headers(r)]}
            for (value, reason), meta in zip(broken, metas[1:-1], strict=True):
                headers, record = by_source[(settings.topic("activities"), meta.offset)]
                assert headers["fanout-reason"] == reason, headers
                assert headers["fanout-source-partition"] == str(meta.partition)
                assert headers["fanout-error"]
                assert record.value == value
            for meta in follow_metas[:2]:
                headers, _ = by_source[(settings.topic("follows"), meta.offset)]
                assert headers["fanout-reason"] == "schema"
            headers, _ = by_source[(settings.topic("high"), chunk_metas[0].offset)]
            assert headers["fanout-reason"] == "schema"
            assert sum(a.agent.dead_letters_sent for a in agents) == len(broken) + 3
        finally:
            for a in agents:
                await a.close()


def _chunk(activity: Activity, feeds: list[str], remove: bool) -> tuple[bytes, bytes]:
    message = ChunkMessage(
        op="remove" if remove else "add",
        priority="high",
        activity=activity,
        feeds=feeds,
        write_ts=REMOVED_WRITE_TS if remove else activity.ts,
    )
    return feeds[0].encode(), encode(message)


async def test_writer_applies_a_remove_before_its_add() -> None:
    settings = pipeline_settings(batch_max_records=2)
    async with pipeline(settings) as store:
        feeds = [f"timeline:f{i}" for i in range(5)]
        a1 = Activity(id="a1", actor="ann", verb="pin", object="o1", ts=1_700_000_000_000_000)
        a2 = Activity(id="a2", actor="ann", verb="pin", object="o2", ts=1_700_000_001_000_000)
        a3 = Activity(id="a3", actor="ann", verb="pin", object="o3", ts=1_700_000_002_000_000)
        # remove before add: in one batch, across batches, and with the key on another partition
        records = [
            _chunk(a1, feeds, remove=True),
            _chunk(a1, feeds, remove=False),
            _chunk(a2, feeds, remove=False),
            _chunk(a2, feeds, remove=False),  # a replay
            _chunk(a2, list(reversed(feeds)), remove=True),  # keyed by another feed
            _chunk(a2, feeds, remove=False),
            _chunk(a3, feeds, remove=False),  # the control: written, never removed
        ]
        await produce_raw(settings, "high", records)
        writer = InProcess(settings, store, "writer", "high")
        try:
            await wait_drained(settings, roles=["writer-high"], within=60)
        finally:
            await writer.close()
        for feed in feeds:
            assert await feed_ids(store, feed) == ["a3"], feed
        assert await store.feed_ids() == sorted(feeds)


async def test_topics_are_checked_and_created_idempotently() -> None:
    settings = pipeline_settings()
    with pytest.raises(MissingTopics, match="fanout topics create") as info:
        await check_topics(settings)
    assert settings.topic("activities") in info.value.missing
    async with pipeline(settings):
        assert await create_topics(settings) == []  # a second create is a no-op
        await check_topics(settings)


async def test_producers_validate_key_and_report_lag() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        async with Producer(settings) as producer:
            where = await producer.send_activity(actor="ann", verb="pin", object="o1",
                                                 time=datetime(2024, 1, 1, tzinfo=UTC))
            assert where.topic == settings.topic("activities")
            await producer.send_follow("fan", "ann")
            with pytest.raises(Exception, match="actor"):
                await producer.send_activity(verb="pin", object="o1")
        with SyncProducer(settings) as sync:
            sync.send_activity({"actor": "ann", "verb": "pin", "object": "o2", "id": "s-1"})
            sync.send_follow("fan", "ann", "unfollow", time=datetime.now(UTC) + timedelta(seconds=60))
        planner_group = group_id(settings.topic_prefix, "planner")
        assert (await lags(settings))[planner_group] == (0, 2)  # nothing consumed yet
        agents = [InProcess(settings, store, "planner"), InProcess(settings, store, "follows"),
                  InProcess(settings, store, "writer", "low"), InProcess(settings, store, "writer", "high")]
        try:
            await wait_drained(settings, within=60)
        finally:
            for a in agents:
                await a.close()
        assert (await lags(settings))[planner_group] == (2, 0)
        assert len(await feed_ids(store, "user:ann")) == 2
        assert await store.following("fan") == []  # the unfollow (later time) won


def _cli(settings: Settings, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **settings_env(settings)}
    return subprocess.run(
        [sys.executable, "-m", "fanout", *args], env=env, input=stdin.decode() if stdin else None,
        capture_output=True, text=True, timeout=60, check=False,
    )


async def test_cli_publish_file_feed_and_lag(tmp_path: Path) -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        lines = [
            json.dumps({"follower": "fan", "followee": "ann", "time": "2024-01-01T00:00:00Z"}),
            "{broken",
            json.dumps({"actor": "ann", "verb": "pin", "object": "o1", "id": "c1", "time": "2024-01-02T00:00:00Z"}),
            json.dumps({"actor": "ann", "verb": "pin"}),
            "",
            json.dumps({"actor": "ann", "verb": "pin", "object": "o2", "id": "c2", "time": "2024-01-03T00:00:00Z"}),
        ]
        events = tmp_path / "events.jsonl"
        events.write_text("\n".join(lines) + "\n")
        done = await asyncio.to_thread(_cli, settings, "publish", "--file", str(events))
        assert done.returncode == 1, done.stderr
        assert "sent 3 events, skipped 2 bad line(s)" in done.stdout
        assert "line 2: json" in done.stderr and "line 4: schema" in done.stderr
        one = await asyncio.to_thread(_cli, settings, "publish", "--actor", "ann", "--verb", "pin", "--object",
                                      "o3", "--id", "c3", "--time", "2024-01-04T00:00:00Z")
        assert one.returncode == 0, one.stderr

        agents = [InProcess(settings, store, "planner"), InProcess(settings, store, "follows"),
                  InProcess(settings, store, "writer", "low"), InProcess(settings, store, "writer", "high")]
        try:
            await wait_drained(settings, within=60)
        finally:
            for a in agents:
                await a.close()

        feed = await asyncio.to_thread(_cli, settings, "feed", "fan", "--json", "--limit", "2", "--before", "c3")
        assert feed.returncode == 0, feed.stderr
        assert [json.loads(line)["id"] for line in feed.stdout.splitlines()] == ["c2", "c1"]
        lag = await asyncio.to_thread(_cli, settings, "lag", "--json")
        rows = [json.loads(line) for line in lag.stdout.splitlines()]
        planner = [r for r in rows if r["group"] == group_id(settings.topic_prefix, "planner")]
        assert sum(r["committed"] or 0 for r in planner) == 3 and sum(r["lag"] for r in planner) == 0
        assert len(rows) == sum((settings.activities_partitions, settings.follows_partitions,
                                 settings.high_partitions, settings.low_partitions))


def test_supervisor_children_see_the_same_settings() -> None:
    settings = pipeline_settings(cassandra_hosts=("127.0.0.1", "10.0.0.2"), active_window_days=2.5)
    assert Settings.from_env(settings_env(settings)) == settings


async def test_planner_redelivers_a_batch_whose_chunks_were_not_acknowledged() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        followers = [f"p{i}" for i in range(250)]
        for follower in followers:
            await store.set_follow(follower, "ann", True, 1)
        planner = InProcess(settings, store, "planner")
        await planner.ready()
        sink = planner.agent.sink  # type: ignore[attr-defined]
        real_flush = sink.acks.flush
        failures: list[str] = []

        async def flaky_flush() -> None:
            if not failures:
                failures.append("once")
                raise KafkaConnectionError("broker gone (injected)")
            await real_flush()

        sink.acks.flush = flaky_flush
        writer = InProcess(settings, store, "writer", "low")
        try:
            event = {"actor": "ann", "verb": "pin", "object": "o1", "id": "r1", "time": "2024-01-01T00:00:00Z"}
            await produce_raw(settings, "activities", [(b"ann", json.dumps(event).encode())])
            await wait_drained(settings, within=60)
        finally:
            await planner.close()
            await writer.close()
        assert failures == ["once"]
        assert (await lags(settings))[group_id(settings.topic_prefix, "planner")] == (1, 0)
        for follower in followers:
            assert await feed_ids(store, f"timeline:{follower}") == ["r1"]
