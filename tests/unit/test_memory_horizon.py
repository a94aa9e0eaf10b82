"""The memory store stays bounded: deletes are forgotten after a grace horizon, as Cassandra
purges tombstones after ``gc_grace_seconds``, and TTLs expire entries (a clock stands in for time)."""

from __future__ import annotations

from fanout import ActivityEvent, Fanout, MemoryStore, Settings, TimelineWrite
from fanout.activity import FOLLOW_BAND, REMOVED_WRITE_TS, Activity
from fanout.codec import activity_event

DAY = 86_400.0
GRACE = 10 * DAY


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def minute(i: int) -> str:
    return f"2026-01-{1 + i // 1440:02d}T{i // 60 % 24:02d}:{i % 60:02d}:00Z"


async def test_10000_posts_keep_the_store_bounded_after_the_horizon() -> None:
    clock = Clock()
    store = MemoryStore(grace_seconds=GRACE, clock=clock)
    fanout = Fanout(store, Settings(max_length=10, trim_every=5))
    await fanout.follow("reader", "author")
    for i in range(10_000):  # one a minute: about 7 days, all within the horizon
        await fanout.add(actor="author", verb="pin", object=f"o{i}", time=minute(i))
        clock.now += 60
    size = store.footprint()
    assert size.live <= 2 * (10 + 5 - 1)  # the author's feed and the reader's
    assert size.tombstones == 2  # a trim deletes a key range: one range delete a feed, not a row each

    clock.now += GRACE
    await fanout.add(actor="author", verb="pin", object="late", time=minute(10_000))
    size = store.footprint()
    assert size.live <= 2 * (10 + 5 - 1)
    assert size.tombstones <= 2  # the newest range delete of each feed
    assert [a.object for a in await fanout.read("reader", limit=3)] == ["late", "o9999", "o9998"]

    # steady state: the deletes kept are those of the last horizon, whatever ran before
    for i in range(20 * 24):  # 20 days at one post an hour
        await fanout.add(actor="author", verb="pin", object=f"o{i}", time=minute(10_001 + i))
        clock.now += 3600
    assert store.footprint().tombstones <= 2  # one range delete a feed, however many trims


async def test_a_removed_activity_after_the_horizon_is_stopped_by_the_registry_only() -> None:
    clock = Clock()
    store = MemoryStore(grace_seconds=GRACE, clock=clock)
    fanout = Fanout(store)
    await fanout.follow("reader", "author")
    pinned = await fanout.add(actor="author", verb="pin", object="p", time="2026-01-01T00:00:00Z")
    await fanout.remove(pinned.id, actor="author")
    assert store.footprint().tombstones == 2

    clock.now += GRACE + 1
    assert store.footprint().tombstones == 0  # the deletes are forgotten, like purged tombstones
    again = await fanout.handle_activity(fanout_event(pinned))  # a producer retry, a replay
    assert again.skipped == "removed before it was added"  # the registry (no TTL: kept) stops it
    assert await fanout.read("reader") == []
    # a bare store write is not stopped: Cassandra's documented behaviour once gc_grace passed
    await store.apply([TimelineWrite("timeline:reader", pinned, pinned.ts)])
    assert await fanout.read("reader") == [pinned]
    # while the horizon runs, the same write stays deleted
    await store.apply([TimelineWrite("timeline:reader", pinned, REMOVED_WRITE_TS, remove=True)])
    await store.apply([TimelineWrite("timeline:reader", pinned, pinned.ts)])
    assert await fanout.read("reader") == []


async def test_a_ttl_expires_timeline_entries_and_registry_entries() -> None:
    clock = Clock()
    store = MemoryStore(grace_seconds=GRACE, ttl_seconds=int(30 * DAY), clock=clock)
    fanout = Fanout(store)
    await fanout.follow("reader", "author")
    pinned = await fanout.add(actor="author", verb="pin", object="p", time="2026-01-01T00:00:00Z")
    await fanout.remove(pinned.id, actor="author")
    clock.now += 29 * DAY
    assert (await store.get_activity(pinned.id)) is not None
    kept = await fanout.add(actor="author", verb="pin", object="q", time="2026-01-02T00:00:00Z")
    clock.now += 2 * DAY  # the first activity's registry entry expired, the second's did not
    assert await store.get_activity(pinned.id) is None
    assert await fanout.read("reader") == [kept]
    clock.now += 29 * DAY  # the second's timeline rows expired too
    assert await fanout.read("reader") == []
    assert await fanout.read("author", kind="user") == []
    clock.now += GRACE + 1
    assert store.footprint() == (0, 0, 0)
    # once the registry forgot the removal, a replay of the removed activity is an add again
    assert (await fanout.handle_activity(fanout_event(pinned))).skipped == ""
    assert await fanout.read("reader") == [pinned]


def fanout_event(activity: Activity) -> ActivityEvent:
    """The event that published ``activity`` (no id: it is derived from the content again)."""
    return activity_event(
        {"actor": activity.actor, "verb": activity.verb, "object": activity.object, "time": activity.time}
    )


async def test_every_trim_remembers_its_range_delete_for_its_own_horizon() -> None:
    """Each trim writes a range delete that Cassandra keeps for gc_grace_seconds after that trim,
    even when an earlier trim's range was as high: the twin forgets none of them earlier."""
    clock = Clock()
    store = MemoryStore(grace_seconds=GRACE, clock=clock)
    feed = "timeline:reader"

    def entry(n: int) -> Activity:
        return Activity(id=f"a{n:02d}", actor="x", verb="pin", object="o", ts=1_700_000_000_000_000 + n)

    await store.apply([TimelineWrite(feed, entry(n), entry(n).ts) for n in range(10, 16)])
    assert await store.trim(feed, 3) == 3  # the range: a12 and older, at a12's time
    clock.now += 5 * DAY  # a re-follow copies a11 and a12 back, above the range delete
    await store.apply([TimelineWrite(feed, entry(n), FOLLOW_BAND + 1) for n in (11, 12)])
    assert await store.trim(feed, 3) == 2  # the same range again, remembered from now on
    clock.now += 6 * DAY  # past the first trim's horizon, within the second's
    await store.apply([TimelineWrite(feed, entry(1), entry(1).ts)])  # a late add below the range
    assert [a.id for a in await store.read(feed, limit=10)] == ["a15", "a14", "a13"]
    clock.now += 5 * DAY  # past both: as after compaction purged them, an old write lands again
    await store.apply([TimelineWrite(feed, entry(1), entry(1).ts)])
    assert [a.id for a in await store.read(feed, limit=10)] == ["a15", "a14", "a13", "a01"]
