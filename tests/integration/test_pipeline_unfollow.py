"""The pipeline's agents on the real broker and node: an unfollow wins over the followee's chunks
planned before it and written after it, also an old post's (a backfill dated back), which the
unfollow's own deletes do not reach (an outside audit: 20 of 20 followers kept it)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from fanout.graph import UNFOLLOW_IN_FLIGHT
from tests.integration.pipeline_helpers import InProcess, feed_ids, pipeline, pipeline_settings, wait_drained
from tests.integration.test_pipeline_order import Record, produce

pytestmark = pytest.mark.integration


async def test_an_old_post_planned_before_an_unfollow_and_written_after_it_is_not_kept() -> None:
    """The planner plans ``UNFOLLOW_IN_FLIGHT`` new posts and one dated a year back while no
    writer runs; the follows agent applies an unfollow; then the writers start and write every
    chunk: the follower who left holds none of the author's posts, the one who stayed all."""
    settings = pipeline_settings()
    year_ago = (datetime.now(UTC) - timedelta(days=365)).isoformat()
    posts: list[Record] = [("ann", {"actor": "ann", "verb": "pin", "object": f"o{i}", "id": f"p{i}"}, 0, None)
                           for i in range(UNFOLLOW_IN_FLIGHT)]
    posts.append(("ann", {"actor": "ann", "verb": "pin", "object": "old", "id": "old", "time": year_ago}, 0, None))
    async with pipeline(settings) as store:
        for reader in ("stays", "leaves"):
            await store.set_follow(reader, "ann", True, 1)
        agents = [InProcess(settings, store, "planner"), InProcess(settings, store, "follows")]
        try:
            await produce(settings, "activities", posts)
            await wait_drained(settings, within=90, roles=["planner"])
            await produce(settings, "follows", [("leaves", {"follower": "leaves", "followee": "ann",
                                                            "op": "unfollow"}, 0, None)])
            await wait_drained(settings, within=60, roles=["follows"])
            assert await store.following("leaves") == []
            agents += [InProcess(settings, store, "writer", "high"), InProcess(settings, store, "writer", "low")]
            await wait_drained(settings, within=90)
        finally:
            for agent in agents:
                await agent.close()
        assert await feed_ids(store, "timeline:leaves") == []
        kept = await feed_ids(store, "timeline:stays")
        assert len(kept) == UNFOLLOW_IN_FLIGHT + 1 and kept[-1] == "old"
