"""The store contract for fan-out and follows, on both stores: each follower once, removes win,
follow copies, unfollows, edges, follower pages, activity windows, chunking, bulk import and stable
cursors."""

from __future__ import annotations

import pytest

from fanout import ChunkMessage, ForeignActivity, Settings
from fanout.activity import REMOVED_WRITE_TS, now_micros
from fanout.codec import ActivityEvent, remove_event
from fanout.store import FollowerRow, RegistryEntry, Store, TimelineWrite
from fanout.writer import TimelineWriter
from tests.contract.helpers import Names, Recorder, act, at, ids, make_fanout


async def test_removing_a_missing_activity_is_silent(store: Store, settings: Settings, unique_name: Names) -> None:
    fanout = make_fanout(store, settings)
    author, reader, missing = unique_name("author"), unique_name("reader"), unique_name("missing")
    await fanout.follow(reader, author)
    kept = await fanout.add(actor=author, verb="pin", object="o", time=at(1))
    assert await fanout.remove(missing, actor=author) is None
    result = await fanout.handle_activity(remove_event(missing, actor=author))  # the plan, in detail
    assert (result.activity, result.op, result.chunks) == (None, "remove", 0)
    assert await store.get_activity(missing) == RegistryEntry(None, True)
    assert ids(await fanout.read(reader)) == [kept.id]
    # a timeline delete of an entry that never existed: nothing to read, no feed appears
    feed = unique_name("feed")
    await store.apply([TimelineWrite(feed, act("a", 1), REMOVED_WRITE_TS, remove=True)])
    assert await store.read(feed, limit=10) == []
    assert feed not in await store.feed_ids()


async def test_fanout_reaches_each_follower_once_and_removal_reaches_all(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    fanout = make_fanout(store, settings)
    author = unique_name("author")
    followers = [unique_name(f"f{i}") for i in range(7)]
    bystander = unique_name("bystander")
    for f in followers:
        await fanout.follow(f, author)
    other = await fanout.add(actor=bystander, verb="pin", object="x", time=at(3))
    await fanout.follow(followers[0], bystander)
    activity = await fanout.add(actor=author, verb="pin", object="pin:9", time=at(10), extra={"k": [1, 2]})

    assert await fanout.read(author, kind="user") == [activity]
    for f in followers[1:]:
        assert await fanout.read(f) == [activity]
    assert ids(await fanout.read(followers[0])) == [activity.id, other.id]
    assert await store.get_activity(activity.id) == RegistryEntry(activity, False)

    result = await fanout.handle_activity(remove_event(activity.id, actor=author))
    assert (result.op, result.feeds) == ("remove", 7)
    assert await fanout.read(author, kind="user") == []
    for f in followers[1:]:
        assert await fanout.read(f) == []
    assert ids(await fanout.read(followers[0])) == [other.id]
    assert await store.get_activity(activity.id) == RegistryEntry(activity, True)
    # a replayed add after the remove does not bring it back
    await fanout.add(actor=author, verb="pin", object="pin:9", time=at(10), extra={"k": [1, 2]})
    assert await fanout.read(followers[3]) == []


async def test_a_remove_that_arrives_before_its_add_wins(store: Store, settings: Settings, unique_name: Names) -> None:
    feeds = [f"timeline:{unique_name('f')}" for _ in range(4)]
    activity = act(unique_name("author"), 4)
    writer = TimelineWriter(store, max_length=100, trim_every=1)

    def chunk(op: str, write_ts: int) -> ChunkMessage:
        return ChunkMessage(op=op, priority="low", activity=activity, feeds=feeds, write_ts=write_ts)  # type: ignore[arg-type]

    assert await writer.write_chunks([chunk("remove", REMOVED_WRITE_TS)]) == 4
    assert await writer.write_chunks([chunk("add", activity.ts)]) == 4
    await store.apply([TimelineWrite(feeds[0], activity, activity.ts)])  # and a replay
    for feed in feeds:
        assert await store.read(feed, limit=10) == []
    assert not set(feeds) & set(await store.feed_ids())

    # the same through Fanout: the remove is recorded, the late add is not fanned out
    fanout = make_fanout(store, settings)
    author, reader = unique_name("author"), unique_name("reader")
    await fanout.follow(reader, author)
    late = unique_name("late")
    early = await fanout.handle_activity(remove_event(late, actor=author))
    assert early.skipped
    result = await fanout.handle_activity(ActivityEvent(actor=author, verb="pin", object="o", id=late))
    assert result.skipped == "removed before it was added"
    assert await fanout.read(reader) == []
    assert await fanout.read(author, kind="user") == []
    entry = await store.get_activity(late)
    assert entry is not None and entry.removed and entry.activity is not None


# follows ---------------------------------------------------------------------------------------
async def test_follow_copies_at_most_the_limit_newest_first(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    fanout = make_fanout(store, settings, follow_activity_limit=5)
    author, reader = unique_name("author"), unique_name("reader")
    for s in (3, 8, 1, 6, 2, 7, 4, 5):
        await fanout.add(actor=author, verb="pin", object=f"o{s}", time=at(s), id=f"{author}-{s}")
    assert await fanout.follow(reader, author) == 5
    assert ids(await fanout.read(reader, limit=100)) == [f"{author}-{s}" for s in (8, 7, 6, 5, 4)]
    assert await store.following(reader) == [author]


async def test_unfollow_removes_only_the_followees_items(store: Store, settings: Settings, unique_name: Names) -> None:
    fanout = make_fanout(store, settings)
    reader, a, b = unique_name("reader"), unique_name("a"), unique_name("b")
    await fanout.follow(reader, a)
    await fanout.follow(reader, b)
    for s in (1, 3, 5):
        await fanout.add(actor=a, verb="pin", object=f"o{s}", time=at(s), id=f"{a}-{s}")
    for s in (2, 4):
        await fanout.add(actor=b, verb="pin", object=f"o{s}", time=at(s), id=f"{b}-{s}")
    assert len(await fanout.read(reader)) == 5
    assert await fanout.unfollow(reader, a) == 3
    assert ids(await fanout.read(reader)) == [f"{b}-4", f"{b}-2"]
    assert await store.following(reader) == [b]
    assert ids(await fanout.read(a, kind="user")) == [f"{a}-5", f"{a}-3", f"{a}-1"]  # the author keeps them


async def test_unfollow_then_refollow_brings_the_items_back(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    fanout = make_fanout(store, settings)
    reader, author = unique_name("reader"), unique_name("author")
    base = now_micros()
    await fanout.follow(reader, author, at=base)
    for s in (1, 2, 3):
        await fanout.add(actor=author, verb="pin", object=f"o{s}", time=at(s), id=f"{author}-{s}")
    expected = [f"{author}-{s}" for s in (3, 2, 1)]
    assert ids(await fanout.read(reader)) == expected
    assert await fanout.unfollow(reader, author, at=base + 1000) == 3
    assert await fanout.read(reader) == []
    assert [p async for p in store.followers(author, page_size=10)] == []

    # a replayed, older follow does not undo the newer unfollow
    await store.set_follow(reader, author, True, base + 500)
    assert await store.following(reader) == []
    assert [p async for p in store.followers(author, page_size=10)] == []

    assert await fanout.follow(reader, author, at=base + 2000) == 3
    assert ids(await fanout.read(reader)) == expected
    assert await store.following(reader) == [author]
    # a replay of the old unfollow changes nothing either
    await store.set_follow(reader, author, False, base + 1000)
    assert await store.following(reader) == [author]


async def test_follow_edges_last_write_wins_and_unfollow_wins_a_tie(store: Store, unique_name: Names) -> None:
    followee, x, y = unique_name("star"), unique_name("x"), unique_name("y")
    await store.set_follow(x, followee, True, 100, active_until=700)
    await store.set_follow(y, followee, True, 100)
    await store.set_follow(y, followee, False, 100)  # tie: the unfollow wins
    await store.set_follow(y, followee, True, 100)  # ... whatever arrives after it
    await store.set_follow(x, followee, True, 200, active_until=300)  # active_until only grows
    pages = [p async for p in store.followers(followee, page_size=10)]
    assert pages == [[FollowerRow(x, 700)]]
    assert await store.following(y) == []
    assert await store.following(x) == [followee]


async def test_followers_are_streamed_in_pages(store: Store, unique_name: Names) -> None:
    star = unique_name("star")
    fans = sorted(unique_name(f"fan{i}") for i in range(11))
    for i, fan in enumerate(fans):
        await store.set_follow(fan, star, True, 10 + i)
    await store.set_follow(fans[4], star, False, 99)
    pages = [p async for p in store.followers(star, page_size=3)]
    assert all(0 < len(p) <= 3 for p in pages)
    assert len(pages) >= 4
    rows = [r for p in pages for r in p]
    assert sorted(r.follower for r in rows) == [f for i, f in enumerate(fans) if i != 4]
    assert {r.active_until for r in rows} == {0}


async def test_activity_windows_and_last_active(store: Store, unique_name: Names) -> None:
    user, a, b, c = unique_name("u"), unique_name("a"), unique_name("b"), unique_name("c")
    assert await store.last_active(user) == 0
    await store.set_follow(user, a, True, 10, active_until=50)
    await store.set_follow(user, b, True, 10)
    await store.set_follow(user, c, True, 10)
    await store.set_follow(user, c, False, 20)
    await store.set_active(user, 1000, 400)
    await store.set_active(user, 900, 300)  # older news: neither value goes back
    assert await store.last_active(user) == 400
    assert [p async for p in store.followers(a, page_size=5)] == [[FollowerRow(user, 1000)]]
    assert [p async for p in store.followers(b, page_size=5)] == [[FollowerRow(user, 1000)]]
    assert [p async for p in store.followers(c, page_size=5)] == []
    assert await store.following(user) == sorted([a, b])


@pytest.mark.parametrize(
    ("high", "expected"),
    [
        (0, [("low", 100), ("low", 100), ("low", 50)]),
        (250, [("high", 100), ("high", 100), ("high", 50)]),
        (150, [("high", 100), ("low", 100), ("high", 50)]),
    ],
    ids=["all-low", "all-high", "mixed"],
)
async def test_250_followers_become_chunks_of_100_100_50_on_their_priority(
    store: Store, settings: Settings, unique_name: Names, high: int, expected: list[tuple[str, int]]
) -> None:
    sink = Recorder()
    author = unique_name("author")
    fans = [unique_name(f"fan{i:03d}") for i in range(250)]
    planner = make_fanout(store, settings, chunk_size=100, sink=sink)
    for fan in fans:
        await planner.follow(fan, author)
    for fan in fans[:high]:
        await planner.mark_active(fan)  # an active reader: HIGH
    activity = await planner.add(actor=author, verb="pin", object="o", time=at(1))

    assert [(c.priority, len(c.feeds)) for c in sink.chunks] == expected
    by_priority: dict[str, set[str]] = {"high": set(), "low": set()}
    for chunk in sink.chunks:
        assert (chunk.op, chunk.activity, chunk.write_ts) == ("add", activity, activity.ts)
        assert not by_priority[chunk.priority] & set(chunk.feeds)
        by_priority[chunk.priority] |= set(chunk.feeds)
    assert by_priority["high"] == {f"timeline:{f}" for f in fans[:high]}
    assert by_priority["low"] == {f"timeline:{f}" for f in fans[high:]}
    # the sink got the chunks; only the author's own feed was written in-process
    assert await planner.read(author, kind="user") == [activity]
    assert await planner.read(fans[0]) == []


# import ----------------------------------------------------------------------------------------
async def test_bulk_import_rejects_a_foreign_actor_and_imports_nothing(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    fanout = make_fanout(store, settings)
    actor, intruder = unique_name("actor"), unique_name("intruder")
    history = [{"actor": actor, "verb": "pin", "object": f"o{s}", "time": at(s), "id": f"{actor}-{s}"} for s in (1, 2)]
    foreign = {"actor": intruder, "verb": "pin", "object": "x", "time": at(3), "id": f"{intruder}-3"}
    with pytest.raises(ForeignActivity, match=intruder):
        await fanout.import_activities(actor, [*history, foreign])
    assert await fanout.read(actor, kind="user") == []
    assert await store.get_activity(f"{actor}-1") is None
    assert await store.get_activity(f"{intruder}-3") is None

    assert await fanout.import_activities(actor, reversed(history)) == 2
    assert ids(await fanout.read(actor, kind="user")) == [f"{actor}-2", f"{actor}-1"]


# cursors ---------------------------------------------------------------------------------------
