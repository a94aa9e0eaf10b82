"""The store contract for trims, on both stores: newest-first by activity order, a trimmed entry stays
off for a replay, newer writes land, rebuild refills below a trim."""

from __future__ import annotations

from fanout import Settings
from fanout.activity import FOLLOW_BAND, REMOVED_WRITE_TS, to_micros
from fanout.store import Store, TimelineWrite
from tests.contract.helpers import Names, act, at, ids, make_fanout, whole


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
    """A trim deletes the range at its newest row's activity time and each follow copy in it at
    the copy's own write time: a replay of the same write (or of an older one) stays deleted, a
    newer write (a re-follow copy, a rebuild) lands."""
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


async def test_an_older_entry_arriving_after_a_trim_stays_off_and_a_follow_copy_lands_until_the_next_trim(
    store: Store, unique_name: Names
) -> None:
    """A trim deletes a key range at the activity time of its newest row: an entry older than that
    row which arrives later at its own activity time (a late chunk, a replay) stays off, as if it
    had come before the trim; one written above (a follow copy) lands, and the next trim takes it
    off again."""
    feed = unique_name("feed")
    entries = [act("a", n) for n in range(10, 16)]
    await store.apply([TimelineWrite(feed, a, a.ts) for a in entries])
    assert await store.trim(feed, 3) == 3
    # the range is a-012 and older: b-001, and 0-012 (a-012's time, a lower id: a tie) at their
    # activity times stay off; b-011 as a follow copy lands
    late = [act("b", 1), act("b", 11), act("0", 12)]
    await store.apply([TimelineWrite(feed, late[0], late[0].ts), TimelineWrite(feed, late[1], FOLLOW_BAND + 1),
                       TimelineWrite(feed, late[2], late[2].ts)])
    assert await whole(store, feed) == ["a-015", "a-014", "a-013", "b-011"]
    assert await store.trim(feed, 3) == 1
    assert await whole(store, feed) == ["a-015", "a-014", "a-013"]
    above = act("b", 12)  # a-012's time, a higher id: above the range, below the kept a-013
    await store.apply([TimelineWrite(feed, above, above.ts)])
    assert await whole(store, feed) == ["a-015", "a-014", "a-013", "b-012"]


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


async def test_a_feed_trimmed_past_100000_rows_still_trims_and_reads(store: Store, unique_name: Names) -> None:
    """Trims leave one range delete, not a tombstone per row that every later scan of the feed reads:
    Cassandra refuses a read that meets 100,000 tombstones (``tombstone_failure_threshold``), which
    would stop every later trim of a busy feed (and its writer's batches) until ``gc_grace_seconds``
    passed, and every read of it past its live rows."""
    feed = unique_name("feed")
    entries = [act("a", n) for n in range(102_000)]
    for start in range(0, len(entries), 10_000):
        await store.apply([TimelineWrite(feed, a, a.ts) for a in entries[start : start + 10_000]])
    assert await store.trim(feed, 1000) >= 1000  # Cassandra counts the rows it read: the first page
    more = [act("b", n) for n in range(200_000, 200_100)]
    await store.apply([TimelineWrite(feed, a, a.ts) for a in more])
    assert await store.trim(feed, 1000) == 100
    page = await store.read(feed, limit=2000)
    assert [a.id for a in page] == [a.id for a in reversed(more)] + [a.id for a in entries[-900:][::-1]]
