"""Notification feeds on both stores (issue 15): seen/read per group, marks for some groups or
all, and unseen/unread counts that stay exact under re-delivery and new activity."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from fanout import Activity, ChunkMessage, ConfigError, Fanout, MemoryStore, Store
from fanout.marks import ALL, MarkStore, MarkWrite
from fanout.writer import TimelineWriter

Names = Callable[[str], str]
BASE = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=2)


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[ChunkMessage] = []

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks.append(chunk)


async def _like(feeds: Fanout, owner: str, actor: str, post: str, minute: int) -> Activity:
    return await feeds.add(actor=f"{owner}.{actor}", verb="like", object=post,
                           time=(BASE + timedelta(minutes=minute)).isoformat(), to=[f"notification:{owner}"])


async def _state(feeds: Fanout, owner: str) -> list[tuple[int, bool, bool]]:
    page = await feeds.notifications(owner)
    return [(n.group.activity_count, n.seen, n.read) for n in page.groups]


async def test_mark_seen_and_read_then_new_activity(store: Store, unique_name: Names) -> None:
    owner = unique_name("owner")
    feeds = Fanout(store)
    for minute, (actor, post) in enumerate([("a", "p1"), ("b", "p1"), ("c", "p2"), ("d", "p3")]):
        await _like(feeds, owner, actor, post, minute)
    page = await feeds.notifications(owner)
    p3, p2, p1 = (n.group.id for n in page.groups)
    assert (page.unseen, page.unread) == (3, 3)

    assert await feeds.mark_seen(owner, [p1, "no-such-group"]) == await feeds.notification_counts(owner)
    assert await _state(feeds, owner) == [(1, False, False), (1, False, False), (2, True, False)]
    counts = await feeds.mark_read(owner, [p2])  # read implies seen
    assert (counts.unseen, counts.unread) == (1, 2)
    assert await _state(feeds, owner) == [(1, False, False), (1, True, True), (2, True, False)]
    counts = await feeds.mark_seen(owner)  # all
    assert (counts.unseen, counts.unread) == (0, 2)

    await _like(feeds, owner, "e", "p1", 10)  # a new like of p1: its group is new again
    page = await feeds.notifications(owner)
    assert [(n.group.id, n.group.activity_count, n.seen, n.read) for n in page.groups] == [
        (p1, 3, False, False), (p3, 1, True, False), (p2, 1, True, True)]
    assert (page.unseen, page.unread) == (1, 2)
    counts = await feeds.mark_read(owner)
    assert (counts.unseen, counts.unread) == (0, 0)
    assert await feeds.notification_counts(owner) == counts


async def test_counts_stay_exact_under_re_delivery_and_late_older_deliveries(store: Store, unique_name: Names) -> None:
    owner = unique_name("owner")
    sink = Recorder()
    feeds = Fanout(store, sink=sink)
    await _like(feeds, owner, "a", "p1", 5)
    await _like(feeds, owner, "b", "p2", 6)
    late = await _like(feeds, owner, "c", "p1", 1)  # older than what will be marked
    writer = TimelineWriter(store, max_length=1000, trim_every=50)
    await writer.write_chunks(sink.chunks[:2])
    assert await feeds.mark_seen(owner) == await feeds.notification_counts(owner)
    await writer.write_chunks(sink.chunks)  # a re-delivery, and the late like
    await writer.write_chunks(sink.chunks)
    page = await feeds.notifications(owner)
    assert [(n.group.activity_count, n.seen) for n in page.groups] == [(1, True), (2, True)]
    assert (page.unseen, page.unread) == (0, 2)
    assert late.id in {a.id for a in page.groups[1].group.activities}


async def test_marks_only_grow_whatever_order_they_arrive_in(store: Store, unique_name: Names) -> None:
    assert isinstance(store, MarkStore)
    feed = f"notification:{unique_name('owner')}"
    await store.write_marks(feed, [MarkWrite("g", "seen", 50), MarkWrite(ALL, "read", 7)])
    await store.write_marks(feed, [MarkWrite("g", "seen", 20), MarkWrite(ALL, "read", 3), MarkWrite("g", "read", 9)])
    await store.write_marks(feed, [MarkWrite("g", "seen", 50)])
    marks = await store.read_marks(feed)
    assert (marks.seen, marks.read) == ({"g": 50}, {ALL: 7, "g": 9})
    assert (await store.read_marks(f"{feed}-none")) == ({}, {})


async def test_notification_calls_need_a_notification_kind() -> None:
    feeds = Fanout(MemoryStore())
    with pytest.raises(ConfigError, match="not a notification kind"):
        await feeds.notifications("7", kind="aggregated")
    with pytest.raises(ConfigError, match="not aggregated"):
        await feeds.read_aggregated("7", kind="timeline")
