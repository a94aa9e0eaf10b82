"""The store contract: one suite, run on ``MemoryStore`` and on ``CassandraStore``.

Each test drives ``fanout.Fanout`` (eager mode) and/or the store directly, on ids made unique
per test (the Cassandra store is shared by the whole session; see tests/conftest.py).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fanout import Activity, ChunkMessage, Fanout, ForeignActivity, Settings, StoreError
from fanout.activity import FOLLOW_BAND, REMOVED_WRITE_TS, now_micros, to_micros
from fanout.codec import ActivityEvent, remove_event
from fanout.store import FollowerRow, RegistryEntry, Store, TimelineWrite
from fanout.writer import TimelineWriter

T0 = datetime(2024, 1, 1, tzinfo=UTC)
Names = Callable[[str], str]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def act(actor: str, n: int, *, ts: int | None = None, **fields: Any) -> Activity:
    """A hand-made activity ``<actor>-<n>`` at T0 + n seconds (or at ``ts``)."""
    return Activity(
        id=f"{actor}-{n:03d}",
        actor=actor,
        verb="pin",
        object=f"object:{n}",
        ts=to_micros(at(n)) if ts is None else ts,
        **fields,
    )


def ids(activities: list[Activity]) -> list[str]:
    return [a.id for a in activities]


class Recorder:
    """A ChunkSink that keeps the chunks instead of writing them."""

    def __init__(self) -> None:
        self.chunks: list[ChunkMessage] = []

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks.append(chunk)


def make_fanout(store: Store, settings: Settings, **changes: Any) -> Fanout:
    # never closed: the Cassandra store is shared by the session
    sink = changes.pop("sink", None)
    return Fanout(store, settings.replace(**changes), sink=sink)


async def whole(store: Store, feed: str) -> list[str]:
    return ids(await store.read(feed, limit=10_000))


# timelines: order, paging, idempotence ----------------------------------------------------
async def test_a_feed_reads_newest_first_over_any_page(store: Store, settings: Settings, unique_name: Names) -> None:
    fanout = make_fanout(store, settings)
    author = unique_name("author")
    seconds = list(range(1, 16))
    random.Random(7).shuffle(seconds)  # published out of order
    for s in seconds:
        await fanout.add(actor=author, verb="pin", object=f"o{s}", time=at(s), id=f"{author}-{s:02d}")
    expected = [f"{author}-{s:02d}" for s in range(15, 0, -1)]

    assert ids(await fanout.read(author, kind="user", limit=100)) == expected
    assert ids(await fanout.read(author, kind="user", limit=4)) == expected[:4]
    for start in range(0, 15):
        for size in (1, 3, 7):
            page = await fanout.read(author, kind="user", limit=size, before=expected[start])
            assert ids(page) == expected[start + 1 : start + 1 + size]
            page = await fanout.read(author, kind="user", limit=size, after=expected[start])
            assert ids(page) == expected[max(0, start - size) : start]
    # both cursors: strictly between, the `limit` closest to `after`, newest first
    feed = f"user:{author}"
    between = await store.read(feed, limit=3, before=(to_micros(at(12)), expected[3]), after=(to_micros(at(2)), ""))
    assert ids(between) == [f"{author}-{s:02d}" for s in (4, 3, 2)]
    assert await store.read(feed, limit=0) == []
    assert await store.read(f"user:{unique_name('nobody')}", limit=10) == []


async def test_adding_twice_leaves_one(store: Store, settings: Settings, unique_name: Names) -> None:
    fanout = make_fanout(store, settings)
    author, reader = unique_name("author"), unique_name("reader")
    await fanout.follow(reader, author)
    event = {"actor": author, "verb": "pin", "object": "pin:1", "target": "board:3", "time": at(5)}
    first = await fanout.add(event)
    assert await fanout.add(event) == first  # same content and time: same derived id
    assert await fanout.read(author, kind="user") == [first]
    assert ids(await fanout.read(reader)) == [first.id]
    assert (await store.read(f"timeline:{reader}", limit=10))[0].target == "board:3"


async def test_a_known_id_published_again_later_stays_once_at_its_first_time(
    store: Store, settings: Settings, unique_name: Names, request: pytest.FixtureRequest
) -> None:
    """A producer retry of an event with its own id but no time gets a new accepted time."""
    fanout = make_fanout(store, settings)
    author, reader, activity_id = unique_name("author"), unique_name("reader"), unique_name("id")
    await fanout.follow(reader, author)
    event = ActivityEvent(actor=author, verb="pin", object="pin:1", id=activity_id)
    first = await fanout.handle_activity(event, accepted_ts=to_micros(at(10)))
    await fanout.handle_activity(event, accepted_ts=to_micros(at(20)))  # the retry
    assert first.activity is not None
    assert await fanout.read(reader) == [first.activity]
    assert await fanout.read(author, kind="user") == [first.activity]
    await fanout.remove(activity_id, actor=author)
    assert await fanout.read(reader) == []


async def test_timeline_write_replays_are_idempotent(store: Store, unique_name: Names) -> None:
    feeds = [unique_name("feed") for _ in range(3)]
    kept = [act("a", n, extra={"n": n, "tags": ["x", "y"]}) for n in range(1, 6)]
    gone = act("a", 9)
    writes = [TimelineWrite(f, a, a.ts) for f in feeds for a in [*kept, gone]]
    writes += [TimelineWrite(f, gone, REMOVED_WRITE_TS, remove=True) for f in feeds]
    shuffled = writes[:]
    random.Random(3).shuffle(shuffled)
    for batch in (writes, shuffled, list(reversed(writes)), writes):
        await store.apply(batch)
    for feed in feeds:
        page = await store.read(feed, limit=100)
        assert page == sorted(kept, key=lambda a: a.key, reverse=True)  # once each, extra intact
        assert page[0].extra == {"n": 5, "tags": ["x", "y"]}


# trimming ----------------------------------------------------------------------------------
async def test_trim_keeps_the_newest_n_by_activity_order(store: Store, unique_name: Names) -> None:
    feed = unique_name("feed")
    newer = [act("a", n) for n in range(20, 26)]
    older = [act("a", n) for n in range(1, 7)]
    # write order is not activity order: the old ones arrive last, with much newer write times
    await store.apply([TimelineWrite(feed, a, a.ts) for a in newer])
    await store.apply([TimelineWrite(feed, a, to_micros(at(1000 + a.ts % 97))) for a in older])
    assert await store.trim(feed, 20) == 0
    assert await store.trim(feed, 4) == 8
    assert await whole(store, feed) == ["a-025", "a-024", "a-023", "a-022"]
    assert await store.trim(feed, 4) == 0
    assert await store.trim(unique_name("empty"), 4) == 0
    # newer entries still land, and a remove still wins
    latest = act("a", 30)
    await store.apply([TimelineWrite(feed, latest, latest.ts), TimelineWrite(feed, newer[5], REMOVED_WRITE_TS, True)])
    assert await whole(store, feed) == ["a-030", "a-024", "a-023", "a-022"]
    assert await store.trim(feed, 0) == 4
    assert await whole(store, feed) == []
    await store.apply([TimelineWrite(feed, act("a", 31), act("a", 31).ts)])
    assert await whole(store, feed) == ["a-031"]


async def test_a_trimmed_entry_stays_off_for_a_replay_and_lands_again_with_a_newer_write(
    store: Store, unique_name: Names
) -> None:
    """A trim deletes each row at that row's own write time: a replay of the same write (or of
    an older one) stays deleted, a newer write (a re-follow copy, a rebuild) lands."""
    feed = unique_name("feed")
    entries = [act("a", n) for n in range(10, 16)]
    copied_at = FOLLOW_BAND + to_micros(at(500))
    await store.apply([TimelineWrite(feed, a, a.ts) for a in entries if a.id != "a-011"])
    await store.apply([TimelineWrite(feed, entries[1], copied_at)])  # a-011 came with a follow copy
    assert await store.trim(feed, 3) == 3
    assert await whole(store, feed) == ["a-015", "a-014", "a-013"]
    replays = [TimelineWrite(feed, entries[0], entries[0].ts), TimelineWrite(feed, entries[2], entries[2].ts - 1),
               TimelineWrite(feed, entries[1], copied_at), TimelineWrite(feed, entries[1], entries[1].ts)]
    await store.apply(replays)
    assert await whole(store, feed) == ["a-015", "a-014", "a-013"]
    await store.apply([TimelineWrite(feed, entries[1], copied_at + 1), TimelineWrite(feed, entries[0], copied_at + 1)])
    assert await whole(store, feed) == ["a-015", "a-014", "a-013", "a-011", "a-010"]
    await store.apply([TimelineWrite(feed, entries[0], REMOVED_WRITE_TS, remove=True)])
    assert await whole(store, feed) == ["a-015", "a-014", "a-013", "a-011"]
    assert await store.trim(feed, 3) == 1
    assert await whole(store, feed) == ["a-015", "a-014", "a-013"]


async def test_an_older_entry_arriving_after_a_trim_lands_until_the_next_trim(
    store: Store, unique_name: Names
) -> None:
    """A trim deletes rows, not a key range: an entry older than the oldest kept one that arrives
    later (a late chunk, a follow copy) is written; the next trim takes it off again."""
    feed = unique_name("feed")
    entries = [act("a", n) for n in range(10, 16)]
    await store.apply([TimelineWrite(feed, a, a.ts) for a in entries])
    assert await store.trim(feed, 3) == 3
    late = [act("b", 1), act("b", 11)]  # both older than the oldest kept entry (a-013)
    await store.apply([TimelineWrite(feed, late[0], late[0].ts), TimelineWrite(feed, late[1], FOLLOW_BAND + 1)])
    assert await whole(store, feed) == ["a-015", "a-014", "a-013", "b-011", "b-001"]
    assert await store.trim(feed, 3) == 2
    assert await whole(store, feed) == ["a-015", "a-014", "a-013"]


async def test_rebuild_refills_a_feed_below_an_earlier_trim(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """Trims of a prolific followee's posts pushed the quiet one's out; after an unfollow of the
    prolific one, a rebuild brings the quiet one's back (a trim does not hide newer writes)."""
    fanout = make_fanout(store, settings, max_length=3, trim_every=1)
    reader, quiet, prolific = unique_name("reader"), unique_name("quiet"), unique_name("prolific")
    await fanout.follow(reader, quiet)
    await fanout.follow(reader, prolific)
    for s in (1, 2, 3):
        await fanout.add(actor=quiet, verb="pin", object=f"q{s}", time=at(s), id=f"{quiet}-{s}")
    for s in range(10, 20):
        await fanout.add(actor=prolific, verb="pin", object=f"p{s}", time=at(s), id=f"{prolific}-{s}")
    assert ids(await fanout.read(reader)) == [f"{prolific}-{s}" for s in (19, 18, 17)]
    await fanout.unfollow(reader, prolific)
    assert await fanout.read(reader) == []
    assert await fanout.rebuild(reader) == 3
    assert ids(await fanout.read(reader)) == [f"{quiet}-{s}" for s in (3, 2, 1)]


async def test_writer_trims_by_activity_order(store: Store, settings: Settings, unique_name: Names) -> None:
    fanout = make_fanout(store, settings, max_length=3, trim_every=1)
    author = unique_name("author")
    for s in (50, 51, 52, 53, 1, 2, 3):  # old activities published after the new ones
        await fanout.add(actor=author, verb="pin", object=f"o{s}", time=at(s), id=f"{author}-{s}")
    assert ids(await fanout.read(author, kind="user", limit=10)) == [f"{author}-{s}" for s in (53, 52, 51)]


# removal --------------------------------------------------------------------------------------
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
async def test_cursor_paging_is_stable_while_new_activities_arrive(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    fanout = make_fanout(store, settings)
    author, reader = unique_name("author"), unique_name("reader")
    await fanout.follow(reader, author)
    for s in range(1, 24):
        await fanout.add(actor=author, verb="pin", object=f"o{s}", time=at(s), id=f"{author}-{s:03d}")
    original = ids(await fanout.read(reader, limit=100))
    assert original == [f"{author}-{s:03d}" for s in range(23, 0, -1)]

    # older pages with `before`, while newer activities keep arriving on top
    seen: list[str] = []
    page = await fanout.read(reader, limit=5)
    newcomers = 0
    while page:
        seen += ids(page)
        newcomers += 1
        await fanout.add(actor=author, verb="pin", object=f"n{newcomers}", time=at(100 + newcomers))
        page = await fanout.read(reader, limit=5, before=page[-1].id)
    assert seen == original
    assert len(await fanout.read(reader, limit=100)) == 23 + newcomers

    # newer pages with `after`, from the oldest up, while older activities arrive below
    upward: list[str] = []
    cursor = original[-1]
    for k in range(20):
        page = await fanout.read(reader, limit=4, after=cursor)
        if not page:
            break
        assert [x.key for x in page] == sorted((x.key for x in page), reverse=True)
        upward = ids(page) + upward
        cursor = page[0].id
        await fanout.add(actor=author, verb="pin", object=f"old{k}", time=at(-k - 1))
    assert upward[-22:] == original[:-1]
    assert len(upward) == 22 + newcomers  # the newcomers came after the originals, once each
    assert len(set(upward)) == len(upward)


# whole feeds -----------------------------------------------------------------------------------
async def test_clear_feed_deletes_what_was_written_before(store: Store, unique_name: Names) -> None:
    feed, other = unique_name("feed"), unique_name("other")
    entries = [act("a", n) for n in range(1, 6)]
    await store.apply([TimelineWrite(f, a, a.ts) for f in (feed, other) for a in entries])
    cut = to_micros(at(100))
    await store.clear_feed(feed, cut)
    assert await store.read(feed, limit=10) == []
    assert await store.trim(feed, 0) == 0
    assert len(await store.read(other, limit=10)) == 5  # other feeds untouched
    later = act("a", 7, ts=to_micros(at(7)))
    await store.apply([TimelineWrite(feed, later, cut + 1)])  # written after the clear: kept
    assert await whole(store, feed) == [later.id]
    await store.apply([TimelineWrite(feed, entries[0], cut)])  # tie: the clear wins
    assert await whole(store, feed) == [later.id]


async def test_clear_feed_is_order_independent(
    store: Store, unique_name: Names, request: pytest.FixtureRequest
) -> None:
    """A partition delete also covers older writes that arrive after it (a replay of an old
    chunk into a feed that was cleared for a rebuild)."""
    feed = unique_name("feed")
    early = act("a", 1)
    await store.clear_feed(feed, to_micros(at(100)))
    await store.apply([TimelineWrite(feed, early, early.ts)])
    assert await store.read(feed, limit=10) == []


async def test_feed_ids_lists_feeds_with_live_entries_sorted(store: Store, unique_name: Names) -> None:
    tag = unique_name("ids")
    live = [f"timeline:{tag}-b", f"timeline:{tag}-a", f"user:{tag}-c"]
    emptied, cleared = f"timeline:{tag}-d", f"timeline:{tag}-e"
    entry = act("a", 1)
    await store.apply([TimelineWrite(f, entry, entry.ts) for f in [*live, emptied, cleared]])
    await store.apply([TimelineWrite(emptied, entry, REMOVED_WRITE_TS, remove=True)])
    await store.clear_feed(cleared, entry.ts)
    assert [f for f in await store.feed_ids() if tag in f] == sorted(live)


async def test_drop_timelines_forgets_every_entry(store: Store, unique_name: Names) -> None:
    feed = unique_name("feed")
    entry = act("a", 1)
    await store.apply([TimelineWrite(feed, entry, entry.ts)])
    await store.put_activity(entry)
    await store.drop_timelines()
    assert await store.feed_ids() == []
    assert await store.read(feed, limit=5) == []
    assert await store.get_activity(entry.id) == RegistryEntry(entry, False)  # the registry stays
    await store.apply([TimelineWrite(feed, entry, entry.ts)])  # a replay fills it again
    assert await whole(store, feed) == [entry.id]


# registry ---------------------------------------------------------------------------------------
async def test_registry_keeps_the_removal_flag(store: Store, unique_name: Names) -> None:
    a = act(unique_name("actor"), 1, target="board:1", extra={"x": 1})
    assert await store.get_activity(a.id) is None
    await store.put_activity(a)
    assert await store.get_activity(a.id) == RegistryEntry(a, False)
    await store.mark_removed(a.id)
    await store.put_activity(a)  # a replayed add does not clear the removal
    assert await store.get_activity(a.id) == RegistryEntry(a, True)
    b = act(unique_name("actor"), 2)
    await store.mark_removed(b.id)
    assert await store.get_activity(b.id) == RegistryEntry(None, True)
    await store.put_activity(b)
    assert await store.get_activity(b.id) == RegistryEntry(b, True)


# Cassandra only: what the memory twin has no equivalent for ----------------------------------
@pytest.mark.integration
@pytest.mark.parametrize("mode", ["concurrent", "partition_batch"])
async def test_cassandra_write_modes_agree(cassandra_store: Any, unique_name: Names, mode: str) -> None:
    from fanout.cassandra import CassandraStore

    base = cassandra_store
    store = await CassandraStore.connect(
        base.settings.replace(max_in_flight=8), keyspace=base.keyspace, write_mode=mode
    )
    try:
        feeds = [unique_name("feed") for _ in range(5)]
        entries = [act("a", n, extra={"blob": "x" * 1500}) for n in range(1, 41)]  # 60 KiB a feed
        writes = [TimelineWrite(f, a, a.ts) for f in feeds for a in entries]
        writes += [TimelineWrite(feeds[0], entries[0], REMOVED_WRITE_TS, remove=True)]
        random.Random(5).shuffle(writes)
        await store.apply(writes)
        assert len(await store.read(feeds[0], limit=100)) == 39
        for feed in feeds[1:]:
            assert await store.read(feed, limit=100) == sorted(entries, key=lambda a: a.key, reverse=True)
        assert await store.trim(feeds[1], 10) == 30
        assert len(await store.read(feeds[1], limit=100)) == 10
    finally:
        await store.close()
        await store.close()  # idempotent
    with pytest.raises(StoreError):
        await store.read(feeds[0], limit=1)


@pytest.mark.integration
async def test_cassandra_ttl_and_unreachable_errors(cassandra_store: Any, unique_name: Names) -> None:
    from fanout.cassandra import CassandraStore

    base = cassandra_store
    store = await CassandraStore.connect(base.settings.replace(cassandra_ttl_seconds=3600), keyspace=base.keyspace)
    try:
        feed = unique_name("feed")
        entry = act("a", 1)
        await store.apply([TimelineWrite(feed, entry, entry.ts)])
        await store.migrate()  # idempotent
        rows = await store._fetch_all(
            store.session.prepare(f"SELECT ttl(actor) FROM {store.keyspace}.timeline WHERE feed = ?").bind((feed,)),
            "ttl",
        )
        assert 3500 < rows[0][0] <= 3600
    finally:
        await store.close()

    with pytest.raises(StoreError, match="not reachable") as info:
        await CassandraStore.connect(base.settings.replace(cassandra_port=1))
    assert info.value.retriable


@pytest.mark.integration
async def test_cassandra_apply_raises_store_error_after_settling(cassandra_store: Any, unique_name: Names) -> None:
    from fanout.cassandra import CassandraStore

    settings = cassandra_store.settings.replace(max_in_flight=4)
    store = await CassandraStore.connect(settings, keyspace=unique_name("fanout_gone")[:40])
    try:
        await store.migrate()
        feed = unique_name("feed")
        entries = [act("a", n) for n in range(30)]
        await store.apply([TimelineWrite(feed, a, a.ts) for a in entries[:1]])  # prepared
        await store.drop_keyspace()
        with pytest.raises(StoreError) as info:
            await store.apply([TimelineWrite(feed, a, a.ts) for a in entries])
        assert not info.value.retriable
        assert store._in_flight._value == 4  # every slot released
    finally:
        await store.close()


def test_cassandra_errors_say_whether_a_retry_can_help() -> None:
    from cassandra import ConsistencyLevel, InvalidRequest, OperationTimedOut, Unavailable, WriteTimeout
    from cassandra.cluster import NoHostAvailable

    from fanout.cassandra import _store_error

    retriable = [
        WriteTimeout(
            "slow", consistency=ConsistencyLevel.ONE, required_responses=1, received_responses=0, write_type=0
        ),
        Unavailable("down", consistency=ConsistencyLevel.ONE, required_replicas=1, alive_replicas=0),
        OperationTimedOut("client timeout"),
        NoHostAvailable("none", {}),
    ]
    for exc in retriable:
        assert _store_error(exc, "write").retriable, exc
    error = _store_error(InvalidRequest("unconfigured table timeline"), "write")
    assert not error.retriable
    assert "fanout migrate" in str(error)
