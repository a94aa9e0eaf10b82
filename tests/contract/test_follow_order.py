"""Follows are ordered by the log, not by clocks (issue 10, items 2 and 3), on both stores.

The events of one follower are keyed to one partition of ``follows``: their order there is the
truth, whatever the producers' clocks say. A follow that loses (to a newer unfollow) copies
nothing, whether it was re-delivered, replayed or produced under another key. Records go through
the agents' own code (``tests/contract/history.py``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from fanout import Edge, Fanout, MemoryStore, Settings, Store
from tests.contract.history import History, apply, other_key, replayed

Names = Callable[[str], str]
T = 1_704_067_200_000  # 2024-01-01T00:00:00Z in epoch milliseconds


async def timeline(store: Store, user: str) -> list[str]:
    return [a.id for a in await store.read(f"timeline:{user}", limit=1000)]


async def test_the_store_keeps_the_timestamp_that_decided_each_edge(store: Store, unique_name: Names) -> None:
    me, a, b = unique_name("me"), unique_name("a"), unique_name("b")
    assert await store.follow_edge(me, a) is None
    assert await store.follow_edges(me) == {}
    await store.set_follow(me, a, True, 100)
    assert await store.follow_edge(me, a) == Edge(True, 100)
    await store.set_follow(me, a, False, 200)
    await store.set_follow(me, a, True, 150)  # older: changes nothing
    await store.set_follow(me, b, True, 300)
    await store.set_follow(me, b, False, 300)  # a tie: the unfollow wins
    assert await store.follow_edge(me, a) == Edge(False, 200)
    assert await store.follow_edges(me) == {a: Edge(False, 200), b: Edge(False, 300)}
    await store.set_follow(me, b, True, 301)
    assert await store.follow_edges(me) == {a: Edge(False, 200), b: Edge(True, 301)}
    assert await store.following(me) == [b]
    # only the edges asked for: a followee never followed is absent, one named twice comes once
    c = unique_name("c")
    assert await store.follow_edges(me, [b, c, b]) == {b: Edge(True, 301)}
    assert await store.follow_edges(me, [a]) == {a: Edge(False, 200)}
    assert await store.follow_edges(me, []) == {}
    d = unique_name("d")  # and the partition of the record that decided it
    await store.set_follow(me, d, True, 400, source=3)
    assert await store.follow_edge(me, d) == Edge(True, 400, 3)
    await store.set_follow(me, d, True, 450, source=1)
    assert await store.follow_edges(me, [d]) == {d: Edge(True, 450, 1)}
    await store.set_follow(me, d, False, 500)  # decided by no record (a library call)
    await store.set_follow(me, d, True, 480, source=2)  # older: changes nothing, its partition neither
    assert await store.follow_edge(me, d) == Edge(False, 500)


async def test_follow_unfollow_follow_within_one_millisecond_ends_followed(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    reader, author = unique_name("reader"), unique_name("author")
    h = History(settings)
    post = h.post(author, f"{author}-1", T)
    events = [h.follow(reader, author, T + 1), h.unfollow(reader, author, T + 1), h.follow(reader, author, T + 1)]
    await apply(Fanout(store, settings), post, *events)
    assert await store.following(reader) == [author]
    assert await timeline(store, reader) == [f"{author}-1"]

    # the eager API: the same rule with the process clock (here the same instant three times)
    fan, star = unique_name("fan"), unique_name("star")
    fanout = Fanout(store, settings)
    await fanout.add(actor=star, verb="pin", object="o", id=f"{star}-1")
    for call in (fanout.follow, fanout.unfollow, fanout.follow):
        await call(fan, star, at=5_000_000)
    assert await store.following(fan) == [star]
    assert await timeline(store, fan) == [f"{star}-1"]


async def test_a_follow_dated_ahead_does_not_outlive_a_later_unfollow(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """Issue 10.2 found it with a `time` 30 days ahead (now refused, reason `time`); within the
    allowed skew (FANOUT_MAX_FUTURE_SKEW_SECONDS) the `time` still orders nothing."""
    reader, author = unique_name("reader"), unique_name("author")
    skew = timedelta(seconds=settings.max_future_skew_seconds - 60)
    ahead = (datetime.fromtimestamp(T / 1000, UTC) + skew).isoformat()
    h = History(settings)
    records = [h.post(author, f"{author}-1", T), h.follow(reader, author, T + 1000, time=ahead),
               h.unfollow(reader, author, T + 2000), h.post(author, f"{author}-2", T + 3000)]
    await apply(Fanout(store, settings), *records)
    assert await store.following(reader) == []
    assert await timeline(store, reader) == []
    assert [p async for p in store.followers(author, page_size=10)] == []


@pytest.mark.parametrize("variant", ["stamped", "in-order", "mis-keyed", "re-delivered", "replayed"])
async def test_whatever_decides_the_edge_decides_the_copy(
    store: Store, settings: Settings, unique_name: Names, variant: str
) -> None:
    """Issue 10.3: follow stamped t+1, post p1, unfollow stamped t+3, post p2, then a follow stamped
    t+2 arriving last. In the follower's partition it is the latest event and wins (followed, both
    posts), whether the stamps are event times or skewed record timestamps; produced under another
    key it is ordered by its record timestamp and loses (unfollowed, nothing copied), also when it
    is delivered again or the whole history is replayed."""
    reader, author = unique_name("reader"), unique_name("author")
    p1, p2 = f"{author}-p1", f"{author}-p2"
    h = History(settings)
    if variant == "stamped":  # the event times say t+1, t+3, t+2; the log says follow, unfollow, follow
        stamp = {n: (datetime.fromtimestamp(T / 1000, UTC) + timedelta(seconds=n)).isoformat() for n in (1, 2, 3)}
        records = [h.follow(reader, author, T + 1000, time=stamp[1]), h.post(author, p1, T + 1500),
                   h.unfollow(reader, author, T + 3000, time=stamp[3]), h.post(author, p2, T + 3500),
                   h.follow(reader, author, T + 4000, time=stamp[2])]
    else:
        late_key = None if variant == "in-order" else other_key(reader, settings.follows_partitions)
        records = [h.follow(reader, author, T + 1000), h.post(author, p1, T + 1500),
                   h.unfollow(reader, author, T + 3000), h.post(author, p2, T + 3500),
                   h.follow(reader, author, T + 2000, key=late_key)]
    fanout = Fanout(store, settings)
    await apply(fanout, *records)
    if variant == "re-delivered":  # its partition delivers the late follow again
        await apply(fanout, records[-1])
    if variant == "replayed":  # every record again, in the replay's timestamp merge
        await replayed(settings, store, h.records)

    followed = variant in ("stamped", "in-order")
    assert await store.following(reader) == ([author] if followed else [])
    assert await timeline(store, reader) == ([p2, p1] if followed else [])
    # the same as a full replay of the history into an empty store
    reference = await replayed(settings, MemoryStore(), h.records)
    assert await reference.store.following(reader) == await store.following(reader)
    assert await timeline(reference.store, reader) == await timeline(store, reader)


async def test_a_followers_events_in_two_partitions_are_ordered_by_their_clocks(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """Two producers of one follower's events with different partitioners (a kcat service's CRC32,
    fanout's own murmur2), or partitions added to the topic: the follower's events sit in two
    partitions, in no order with each other. A record of the partition that decided the edge
    comes after that decision; one of the other partition counts only when its clock is newer,
    whichever partition is applied first. Within each partition, order decides as always."""
    parts = settings.follows_partitions
    for first in ("lagging", "caught-up"):
        fan, star = unique_name("fan"), unique_name("star")
        home = History(settings).follow(fan, star, T).partition
        elsewhere = (home + 1) % parts
        h = History(settings)
        post = h.post(star, f"{star}-1", T)
        follow = h.follow(fan, star, T + 1000, partition=elsewhere)  # the kcat service
        pair = [h.unfollow(fan, star, T + 2000), h.follow(fan, star, T + 2000),  # fanout's producer, one ms
                h.unfollow(fan, star, T + 2000)]
        order = [post, follow, *pair] if first == "caught-up" else [post, *pair, follow]
        await apply(Fanout(store, settings), *order)
        assert await store.following(fan) == [], first
        assert await timeline(store, fan) == [], first
        again = await replayed(settings, MemoryStore(), h.records)
        assert await again.store.following(fan) == [], first

    # a same-millisecond pair in the partition another client's hash chose: the log's order
    fan, star = unique_name("fan"), unique_name("star")
    h = History(settings)
    elsewhere = (History(settings).follow(fan, star, T).partition + 1) % parts
    events = [h.post(star, f"{star}-1", T), h.follow(fan, star, T + 1000, partition=elsewhere),
              h.unfollow(fan, star, T + 1000, partition=elsewhere), h.follow(fan, star, T + 1000, partition=elsewhere)]
    await apply(Fanout(store, settings), *events)
    assert await store.following(fan) == [star]
    assert await timeline(store, fan) == [f"{star}-1"]
    assert await (await replayed(settings, MemoryStore(), h.records)).store.following(fan) == [star]


@pytest.mark.parametrize(("steps", "followed"), [
    ([("follow", 2, 0), ("follow", 0, 0), ("unfollow", 2, 0)], False),
    ([("follow", 0, 0), ("follow", 2, 0), ("unfollow", 0, 0)], True),
    ([("unfollow", 0, 300), ("unfollow", 1, 300), ("unfollow", 0, 200), ("follow", 0, 300)], False),
], ids=["2-0-2", "0-2-0", "ties-then-older"])
async def test_records_of_two_partitions_in_one_millisecond_end_as_the_replay_orders_them(
    store: Store, settings: Settings, unique_name: Names, steps: list[tuple[str, int, int]], followed: bool
) -> None:
    """Two partitions' records in one millisecond are in no order; a replay's merge puts the lower
    partition's first. Live, whichever partition is applied first, each edge must end as that
    order gives (a later record of the partition that decided it, or a record of a greater
    partition in the same millisecond, wins), not as the arrival order gives."""
    for arrival in ("as produced", "greater partition first", "lower partition first"):
        fan, star = unique_name("fan"), unique_name("star")
        h = History(settings)
        post = h.post(star, f"{star}-1", T)
        records = [h.follow(fan, star, T + ms, op=op, partition=partition) for op, partition, ms in steps]
        if arrival != "as produced":  # one partition's records all before the other's, each in its order
            records.sort(key=lambda r: r.partition, reverse=arrival == "greater partition first")
        await apply(Fanout(store, settings), post, *records)
        assert (await store.following(fan) == [star]) is followed, arrival
        assert (await timeline(store, fan) == [f"{star}-1"]) is followed, arrival
        again = await replayed(settings, MemoryStore(), h.records)
        assert (await again.store.following(fan) == [star]) is followed, arrival


async def test_two_decisions_at_one_timestamp_settle_alike_on_both_stores(store: Store, unique_name: Names) -> None:
    """As Cassandra settles each cell: the unfollow's tombstone wins the tie, and of the two
    partitions the greater (no partition counting as the least)."""
    me, a, b, c = unique_name("me"), unique_name("a"), unique_name("b"), unique_name("c")
    await store.set_follow(me, a, False, 300, source=0)
    await store.set_follow(me, a, False, 300, source=1)
    await store.set_follow(me, b, True, 300, source=2)
    await store.set_follow(me, b, True, 300, source=1)
    await store.set_follow(me, c, True, 300, source=1)
    await store.set_follow(me, c, False, 300)
    assert await store.follow_edges(me) == {a: Edge(False, 300, 1), b: Edge(True, 300, 2), c: Edge(False, 300, 1)}
