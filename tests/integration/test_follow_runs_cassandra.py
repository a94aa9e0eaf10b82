"""The Cassandra store's calls for runs of follows (``FollowRunStore``) write and read what the
single calls do: ``set_follows`` the cells of ``set_follow`` per edge, ``read_feeds`` the rows of
``read`` per feed; and ``FollowGraph.apply_follows`` takes them on this store."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from fanout import Settings
from fanout.activity import Activity
from fanout.core import Fanout
from fanout.store import Edge, FollowerRow, TimelineWrite

pytestmark = pytest.mark.integration


def name(tag: str) -> str:
    return f"{tag}-{uuid.uuid4().hex[:8]}"


async def followers(store: Any, followee: str) -> list[FollowerRow]:
    return [row async for page in store.followers(followee, page_size=100) for row in page]


async def test_set_follows_writes_what_set_follow_writes_edge_by_edge(cassandra_store: Any) -> None:
    store = cassandra_store
    bulk, single = name("bulk"), name("single")
    stars = [name("star") for _ in range(3)]
    await store.set_follow(bulk, stars[0], False, 500)  # an unfollow decided later: it stays
    edges = {star: 100 + n for n, star in enumerate(stars)}
    await store.set_follows(bulk, edges, active_until=9_000)
    for star, at in edges.items():
        await store.set_follow(single, star, True, at, 9_000)
    await store.set_follow(single, stars[0], False, 500)
    assert await store.follow_edges(bulk) == {stars[0]: Edge(False, 500), stars[1]: Edge(True, 101),
                                              stars[2]: Edge(True, 102)}
    assert await store.follow_edges(single) == await store.follow_edges(bulk)
    for star in stars[1:]:
        assert sorted(await followers(store, star)) == sorted([FollowerRow(bulk, 9_000), FollowerRow(single, 9_000)])
    assert await followers(store, stars[0]) == []
    many = {name("s"): 7 for _ in range(130)}  # more than one batch of the follower's partition
    await store.set_follows(bulk, many)
    assert len(await store.follow_edges(bulk, list(many))) == 130
    await store.set_follows(bulk, {})


async def test_read_feeds_reads_what_read_reads_feed_by_feed(cassandra_store: Any) -> None:
    store = cassandra_store
    feeds = [f"user:{name('u')}" for _ in range(4)]
    writes = [TimelineWrite(feed, Activity(id=f"{feed}-{n}", actor="a", verb="pin", object=f"o{n}", ts=1000 + n * k),
                            1000 + n) for k, feed in enumerate(feeds[:3], start=1) for n in range(7)]
    await store.apply(writes)
    for limit in (1, 5, 100):
        found = await store.read_feeds([*feeds, feeds[0]], limit=limit)
        assert list(found) == feeds  # each feed once, in the order asked, the empty one too
        for feed in feeds:
            assert found[feed] == await store.read(feed, limit=limit)
    assert await store.read_feeds(feeds, limit=0) == {feed: [] for feed in feeds}
    assert await store.read_feeds([], limit=5) == {}


async def test_read_feeds_pages_through_more_rows_than_a_page(cassandra_store: Any) -> None:
    store = cassandra_store
    feeds = [f"user:{name('big')}" for _ in range(2)]
    rows = 3_000  # two feeds: 6,000 rows, more than one page of the driver's reads (5,000)
    await store.apply([TimelineWrite(feed, Activity(id=f"{n:05}", actor="a", verb="pin", object="o", ts=n), n)
                       for feed in feeds for n in range(rows)])
    found = await store.read_feeds(feeds, limit=rows)
    for feed in feeds:
        assert [a.id for a in found[feed]] == [f"{n:05}" for n in reversed(range(rows))]


async def test_a_run_of_follows_on_cassandra_copies_and_decides_as_one_by_one(cassandra_store: Any) -> None:
    store = cassandra_store
    settings = Settings(follow_activity_limit=3)
    graph = Fanout(store, settings).graph
    assert graph._runs is cassandra_store  # the store takes runs (narrows only the fixture's name)
    stars = [name("star") for _ in range(4)]
    for star in stars:
        await store.apply([TimelineWrite(f"user:{star}", a, a.ts) for a in
                           [Activity(id=f"{star}-{n}", actor=star, verb="pin", object="o", ts=2000 + n)
                            for n in range(5)]])
    me, you = name("me"), name("you")
    await store.set_follow(me, stars[3], True, 10_000)  # decided by a newer clock: a mis-keyed event loses
    follows = [(star, 5_000 + n, n != 3) for n, star in enumerate(stars)]
    run = await graph.apply_follows(me, follows)
    one_by_one = [await graph.apply(you, star, True, clock, keyed=in_order) for star, clock, in_order in follows]
    assert run == [3, 3, 3, 0] and one_by_one == [3, 3, 3, 3]
    mine = {a.id for a in await store.read(f"timeline:{me}", limit=100)}
    assert mine == {f"{star}-{n}" for star in stars[:3] for n in (2, 3, 4)}
    mine_edges, yours = await store.follow_edges(me), await store.follow_edges(you)
    assert mine_edges == {**yours, stars[3]: Edge(True, 10_000)}  # each followee's edge, as one by one
