"""The store contract for listing the follow graph (the HTTP API's followers pages and counts),
on ``MemoryStore`` and ``CassandraStore``."""

from __future__ import annotations

from collections.abc import Callable

from fanout import Fanout, Settings
from fanout.store import Store

Names = Callable[[str], str]


async def test_followers_page_in_id_order_after_a_cursor_and_count(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    fanout = Fanout(store, settings)
    star = unique_name("star")
    fans = [unique_name(f"fan{i}") for i in range(12)]
    for fan in fans:
        await fanout.follow(fan, star)
    for fan in fans[3:7]:  # unfollowed edges leave rows behind in Cassandra: pages skip them
        await fanout.unfollow(fan, star)
    live = sorted(set(fans) - set(fans[3:7]))
    assert await store.follower_count(star) == len(live)
    walked: list[str] = []
    after: str | None = None
    while True:
        page = await store.follower_page(star, after=after, limit=3)
        assert len(page) <= 3
        walked.extend(page)
        if len(page) < 3:
            break
        after = page[-1]
    assert walked == live
    assert await store.follower_page(star, after=live[-1], limit=3) == []
    assert await store.follower_page(star, after=None, limit=100) == live
    nobody = unique_name("nobody")
    assert await store.follower_count(nobody) == 0 and await store.follower_page(nobody, after=None, limit=5) == []
