"""Notifications through the Kafka pipeline with several writers (issue 15): likes from many
actors on one user's posts land as notification groups with exact counts; re-sent and removed
likes count right; marking seen/read and new likes after it give the counts users expect."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fanout import Fanout
from fanout.producer import Producer
from tests.integration.pipeline_helpers import InProcess, pipeline, pipeline_settings, wait_drained

pytestmark = pytest.mark.integration

NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
POSTS = ("p0", "p1", "p2")


def _like(actor: int, post: str, second: int) -> dict[str, object]:
    when = (NOON + timedelta(seconds=second)).isoformat()
    return {"actor": f"u{actor}", "verb": "like", "object": post, "time": when,
            "to": ["notification:owner", "notification:fan"]}


async def test_likes_from_many_actors_become_exact_notification_groups() -> None:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        feeds = Fanout(store, settings)
        await feeds.mark_active("fan")  # fan's copies go HIGH, owner's LOW: both writer pools work
        agents = [InProcess(settings, store, "planner"), InProcess(settings, store, "planner"),
                  *(InProcess(settings, store, "writer", p) for p in ("high", "high", "low", "low"))]
        try:
            liked: dict[str, set[str]] = {post: set() for post in POSTS}
            ids: dict[tuple[int, str], str] = {}
            async with Producer(settings) as producer:
                for actor in range(40):
                    for j, post in enumerate(POSTS[: 1 + actor % 3]):
                        sent = await producer.send_activity(_like(actor, post, actor * 3 + j))
                        assert sent.activity_id is not None
                        ids[actor, post] = sent.activity_id
                        liked[post].add(f"u{actor}")
                for actor in range(5):  # re-sent: the same ids, counted once
                    await producer.send_activity(_like(actor, "p0", actor * 3))
                for actor in (1, 2):  # unliked
                    await producer.send_activity({"actor": f"u{actor}", "op": "remove", "id": ids[actor, "p0"]})
                    liked["p0"].discard(f"u{actor}")
                await producer.flush()
            await wait_drained(settings, within=90, roles=("planner", "writer-high", "writer-low"))

            for user in ("owner", "fan"):
                page = await feeds.notifications(user)
                got = {n.group.activities[0].object: (n.group.activity_count, n.group.actor_count)
                       for n in page.groups}
                assert got == {post: (len(actors), len(actors)) for post, actors in liked.items()}
                assert (page.unseen, page.unread) == (3, 3)
            # by the newest like: u39 likes p0 at 117 s, u38 p2 at 116 s and p1 at 115 s
            assert [n.group.activities[0].object for n in (await feeds.notifications("owner")).groups] == [
                "p0", "p2", "p1"]

            p1 = next(n.group.id for n in (await feeds.notifications("owner")).groups
                      if n.group.activities[0].object == "p1")
            assert (await feeds.mark_read("owner", [p1])).unread == 2
            counts = await feeds.mark_seen("owner")
            assert (counts.unseen, counts.unread) == (0, 2)

            async with Producer(settings) as producer:  # new likes of p1 after the marks
                await producer.send_activity(_like(100, "p1", 3600))
                await producer.send_activity(_like(101, "p1", 3601))
                await producer.flush()
            await wait_drained(settings, within=60, roles=("planner", "writer-high", "writer-low"))
            page = await feeds.notifications("owner")
            top = page.groups[0]
            assert top.group.id == p1 and (top.seen, top.read) == (False, False)
            assert (top.group.activity_count, page.unseen, page.unread) == (len(liked["p1"]) + 2, 1, 3)
            assert [a.actor for a in top.group.activities[:2]] == ["u101", "u100"]
        finally:
            for agent in agents:
                await agent.close()

