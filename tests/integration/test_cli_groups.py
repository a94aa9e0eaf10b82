"""`fanout migrate`, `fanout feed USER --kind notification|aggregated` and `fanout notifications
USER --mark-seen` on the real Cassandra node (issue 15)."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from fanout import Fanout, Settings
from fanout.cassandra import CassandraStore
from fanout.cli import main

pytestmark = pytest.mark.integration


def test_cli_shows_groups_and_counts_and_marks_them(monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    keyspace = f"fanout_cli_{uuid.uuid4().hex[:16]}"
    monkeypatch.setenv("FANOUT_CASSANDRA_KEYSPACE", keyspace)
    settings = Settings.from_env()
    noon = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)

    async def like_posts() -> None:
        async with Fanout(await CassandraStore.connect(settings), settings) as feeds:
            for minute, (actor, post) in enumerate([("a", "p1"), ("b", "p1"), ("c", "p2")]):
                when = (noon + timedelta(minutes=minute)).isoformat()
                await feeds.add(actor=actor, verb="like", object=post, time=when, to=["notification:7", "aggregated:7"])

    async def drop() -> None:
        store = await CassandraStore.connect(settings)
        try:
            await store.drop_keyspace()
        finally:
            await store.close()

    try:
        assert main(["migrate"]) == 0
        assert main(["migrate"]) == 0  # idempotent
        asyncio.run(like_posts())
        capsys.readouterr()
        assert main(["feed", "7", "--kind", "notification", "--json"]) == 0
        page = json.loads(capsys.readouterr().out)
        assert (page["unseen"], page["unread"]) == (2, 2)
        assert [(g["activity_count"], g["actor_count"], g["seen"]) for g in page["groups"]] == [(1, 1, False),
                                                                                                 (2, 2, False)]
        assert main(["feed", "7", "--kind", "aggregated", "--json"]) == 0
        assert [g["activity_count"] for g in json.loads(capsys.readouterr().out)["groups"]] == [3]

        assert main(["notifications", "7", "--mark-seen"]) == 0
        shown = capsys.readouterr().out
        assert "unseen 2, unread 2" in shown and "marked all seen: unseen 0, unread 2" in shown
        assert main(["notifications", "7", "--json"]) == 0
        page = json.loads(capsys.readouterr().out)
        assert (page["unseen"], page["unread"], [g["seen"] for g in page["groups"]]) == (0, 2, [True, True])
    finally:
        asyncio.run(drop())
