"""An unfollow wins over a chunk planned before it that lands after it, on both stores.

An unfollow deletes what the follower's feeds hold of the followee and the followee's newest
``UNFOLLOW_IN_FLIGHT`` activities. An older activity (a post dated back, a backfill) whose chunk
is still on its way to a writer was neither: before the writer looked at the edges after its
write (``TimelineWriter.write_chunks``), it landed after the unfollow and stayed (an outside
audit: 20 of 20 followers). The chunks here are held back by a sink (``Recorder``) and written
after the graph changed, as a writer behind a backlog would write them.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from fanout import Fanout, Priority, Settings, Store, follower_hook
from fanout.activity import Activity, now_micros
from fanout.cassandra.unfollows import confirm_level
from fanout.codec import ChunkMessage
from fanout.graph import UNFOLLOW_IN_FLIGHT
from fanout.memory import MemoryStore
from fanout.writer import TimelineWriter

from .test_remove_races import Recorder

Names = Callable[[str], str]


async def holding(store: Store, activity_id: str, *feeds: str) -> list[str]:
    """The feeds (of ``feeds``) whose newest 500 entries hold ``activity_id``."""
    return [feed for feed in feeds if activity_id in {a.id for a in await store.read(feed, limit=500)}]


def writer_for(store: Store, settings: Settings) -> TimelineWriter:
    return TimelineWriter(store, max_length=settings.max_length, trim_every=settings.trim_every,
                          follower_kinds=settings.feed_kinds)


async def test_an_old_post_in_flight_during_an_unfollow_loses_to_it(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """The author has ``UNFOLLOW_IN_FLIGHT`` newer posts, so the unfollow's own deletes miss the
    old one. A follower who stays keeps it; one who unfollowed loses it; one who unfollowed and
    followed again has it from the follow's copy; one who unfollowed, followed and unfollowed
    again loses it (the last unfollow decides)."""
    author = unique_name("author")
    stays, leaves, returns, flips = (unique_name(who) for who in ("stays", "leaves", "returns", "flips"))
    eager = Fanout(store, settings)
    for reader in (stays, leaves, returns, flips):
        await eager.follow(reader, author)
    for i in range(UNFOLLOW_IN_FLIGHT):
        await eager.add(actor=author, verb="post", object=f"new{i}")
    in_flight = Recorder()
    year_ago = (datetime.now(UTC) - timedelta(days=365)).isoformat()
    old = await Fanout(store, settings, sink=in_flight).add(actor=author, verb="post", object="old", time=year_ago)
    await eager.unfollow(leaves, author)
    await eager.unfollow(returns, author)
    await eager.follow(returns, author)
    for follow in (False, True, False):
        await (eager.follow if follow else eager.unfollow)(flips, author)
    assert in_flight.chunks, "the old post's chunk was held back"

    await writer_for(store, settings).write_chunks(in_flight.chunks)
    feeds = [f"timeline:{reader}" for reader in (stays, leaves, returns, flips)]
    assert await holding(store, old.id, *feeds) == [f"timeline:{stays}", f"timeline:{returns}"]
    await writer_for(store, settings).write_chunks(in_flight.chunks)  # a re-delivery ends the same
    assert await holding(store, old.id, *feeds) == [f"timeline:{stays}", f"timeline:{returns}"]
    await eager.follow(leaves, author)  # following again brings it back with the copies
    assert await holding(store, old.id, f"timeline:{leaves}") == [f"timeline:{leaves}"]


async def test_a_target_is_kept_when_its_user_unfollowed_the_author(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """A target feed is written whoever follows whom: the writer leaves the targets the registry
    names, also of a follower kind, while the same user's follower feed of another kind loses it."""
    author, reader = unique_name("author"), unique_name("reader")
    settings = settings.replace(feed_kinds=("timeline", "digest"))
    eager = Fanout(store, settings)
    await eager.follow(reader, author)
    for i in range(UNFOLLOW_IN_FLIGHT):
        await eager.add(actor=author, verb="post", object=f"new{i}")
    in_flight = Recorder()
    year_ago = (datetime.now(UTC) - timedelta(days=365)).isoformat()
    old = await Fanout(store, settings, sink=in_flight).add(
        actor=author, verb="post", object="old", time=year_ago, to=[f"digest:{reader}"]
    )
    await eager.unfollow(reader, author)
    await writer_for(store, settings).write_chunks(in_flight.chunks)
    assert await holding(store, old.id, f"timeline:{reader}", f"digest:{reader}") == [f"digest:{reader}"]


async def test_unfollowed_names_the_edges_off_now_with_their_timestamps(store: Store, unique_name: Names) -> None:
    """``Store.unfollowed``: edges off now (an unfollow decided last, a tie to the unfollow), at
    the unfollow's timestamp; not an edge on again, nor one never written, nor another followee's."""
    followee, other = unique_name("followee"), unique_name("other")
    on, off, again, tie, never, elsewhere = map(unique_name, ("on", "off", "again", "tie", "never", "elsewhere"))
    await store.set_follow(on, followee, True, 100)
    await store.set_follow(off, followee, True, 100)
    await store.set_follow(off, followee, False, 200)
    await store.set_follow(off, followee, True, 150)  # older than the unfollow: loses
    await store.set_follow(again, followee, False, 200)
    await store.set_follow(again, followee, True, 300)
    await store.set_follow(tie, followee, True, 400)
    await store.set_follow(tie, followee, False, 400)
    await store.set_follow(elsewhere, other, False, 500)
    found = await store.unfollowed(followee, [on, off, again, tie, never, elsewhere])
    assert found == {off: 200, tie: 400}
    assert await store.unfollowed(other, [on, elsewhere]) == {elsewhere: 500}
    assert await store.unfollowed(unique_name("nobody"), [on]) == {}


async def test_many_followers_and_several_authors_in_one_batch(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """One writer call with the chunks of two authors, one with 300 followers (three chunks, three
    queries of the Cassandra store; the memory store walks the followers, not its 280 edges off):
    exactly the followers whose edge to the chunk's author went off lose it."""
    big, small = unique_name("big"), unique_name("small")
    fans = [f"{big}-fan{i:03}" for i in range(300)]
    pals = [f"{small}-pal{i}" for i in range(3)]
    start = now_micros()
    for fan in fans:
        await store.set_follow(fan, big, True, start)
    for pal in pals:
        await store.set_follow(pal, small, True, start)
        await store.set_follow(pal, big, True, start)  # follows both: only its edge to ``small`` goes off
    in_flight = Recorder()
    planning = Fanout(store, settings, sink=in_flight)
    posts = [await planning.add(actor=author, verb="post", object="o") for author in (big, small)]
    gone = set(fans[20:]) | {pals[0]}
    for fan in fans[20:]:
        await store.set_follow(fan, big, False, start + 1)
    await store.set_follow(pals[0], small, False, start + 1)
    assert len(in_flight.chunks) >= 4

    await writer_for(store, settings).write_chunks(in_flight.chunks)
    for post, readers in ((posts[0], fans + pals), (posts[1], pals)):
        left = {r for r in readers if await holding(store, post.id, f"timeline:{r}")}
        assert left == {r for r in readers if r not in gone or (post.actor == big and r in pals)}


async def test_a_follower_hook_is_trusted_over_the_stored_edges(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """With a follower source of the caller's (``follower_hook``: a group's members, say) the store's
    edges are not the audience: a user whose stored edge to the author is off still gets what the
    hook names (the writer does not look at the edges then)."""
    author, member = unique_name("author"), unique_name("member")

    def members(user: str) -> dict[Priority, list[str]]:
        return {Priority.HIGH: [member], Priority.LOW: []}

    fanout = Fanout(store, settings.replace(pull_threshold=0), followers=follower_hook(members))
    await fanout.follow(member, author)
    await fanout.unfollow(member, author)
    post = await fanout.add(actor=author, verb="post", object="group post")
    assert await holding(store, post.id, f"timeline:{member}") == [f"timeline:{member}"]


def test_edges_found_off_are_read_again_at_a_level_that_sees_every_write() -> None:
    """``confirm_level(write, read)``: the replication factor plays no part (an agent need not know
    it); after LOCAL_QUORUM writes another data centre's LOCAL_QUORUM read may miss one."""
    assert confirm_level("LOCAL_QUORUM", "LOCAL_QUORUM") == "EACH_QUORUM"
    assert confirm_level("QUORUM", "QUORUM") is None
    assert confirm_level("QUORUM", "ONE") == "QUORUM"
    assert confirm_level("ONE", "ONE") == "ALL"
    assert confirm_level("ANY", "QUORUM") == "ALL"
    assert confirm_level("ONE", "ALL") is None
    assert confirm_level("ALL", "ONE") is None


async def test_no_registry_entry_nothing_undone(unique_name: Names) -> None:
    """A chunk whose activity the registry no longer holds (expired): its targets are unknown, so
    no feed of it is taken for a follower's, whatever the edges say."""
    store = MemoryStore()
    author, reader = unique_name("author"), unique_name("reader")
    await store.set_follow(reader, author, False, now_micros())
    activity = Activity(id=unique_name("id"), actor=author, verb="post", object="o", ts=now_micros() - 10**9)
    feeds = [f"timeline:{reader}"]
    chunk = ChunkMessage(op="add", priority="high", activity=activity, feeds=feeds, write_ts=activity.ts)
    writer = TimelineWriter(store, max_length=100, trim_every=50, follower_kinds=("timeline",))
    await writer.write_chunks([chunk])
    assert await holding(store, activity.id, f"timeline:{reader}") == [f"timeline:{reader}"]
    await store.put_activity(activity)  # registered: the same chunk again is undone
    await writer.write_chunks([chunk])
    assert await holding(store, activity.id, f"timeline:{reader}") == []
