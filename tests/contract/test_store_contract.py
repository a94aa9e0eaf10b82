"""The store contract: one suite, run on ``MemoryStore`` and on ``CassandraStore`` (timelines: order,
paging, idempotence, feed listing, the registry; Cassandra specifics). Trims are in
test_trim_contract.py, fan-out and follows in test_fanout_contract.py.

Each test drives ``fanout.Fanout`` (eager mode) and/or the store directly, on ids made unique
per test (the Cassandra store is shared by the whole session; see tests/conftest.py).
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from fanout import Settings, StoreError
from fanout.activity import REMOVED_WRITE_TS, to_micros
from fanout.codec import ActivityEvent
from fanout.store import RegistryEntry, Store, TimelineWrite
from tests.contract.helpers import Names, act, at, ids, make_fanout, whole


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
@pytest.mark.parametrize("mode", ["concurrent", "partition_batch", "replica_batch"])
async def test_cassandra_write_modes_agree(cassandra_store: Any, unique_name: Names, mode: str) -> None:
    from fanout.cassandra import CassandraStore

    base = cassandra_store
    store = await CassandraStore.connect(
        base.settings.replace(max_in_flight=8), keyspace=base.keyspace, write_mode=mode
    )
    try:
        # a node marked down is tried again every 2 s at most, forever (tests/unit/test_cassandra_reconnect.py)
        policy = store.cluster.reconnection_policy
        assert (policy.base_delay, policy.max_delay, policy.max_attempts) == (0.5, 2.0, None)
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
    from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage

    from fanout.cassandra import _store_error

    retriable = [
        WriteTimeout(
            "slow", consistency=ConsistencyLevel.ONE, required_responses=1, received_responses=0, write_type=0
        ),
        Unavailable("down", consistency=ConsistencyLevel.ONE, required_replicas=1, alive_replicas=0),
        OperationTimedOut("client timeout"),
        NoHostAvailable("none", {}),
        # the protocol's own error messages, when the driver hands one over instead of retrying it
        OverloadedErrorMessage(0x1001, "overloaded", {}),
        IsBootstrappingErrorMessage(0x1002, "bootstrapping", {}),
    ]
    for exc in retriable:
        assert _store_error(exc, "write").retriable, exc
    error = _store_error(InvalidRequest("unconfigured table timeline"), "write")
    assert not error.retriable
    assert "fanout migrate" in str(error)
