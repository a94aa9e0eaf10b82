"""Aggregated feeds on both stores (issue 15): grouping, the maximum per group, paging by group,
removes inside a group, re-delivery, and any order of the same chunks giving the same groups."""

from __future__ import annotations

import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout import Activity, ChunkMessage, Fanout, Settings, Store
from fanout.aggregation import Group, aggregate
from fanout.grouping import verb_day, verb_object_day
from fanout.writer import TimelineWriter

Names = Callable[[str], str]
DAY = timedelta(days=1)
BASE = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - 5 * DAY  # noon, 5 days ago


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[ChunkMessage] = []

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks.append(chunk)


def _shape(groups: Any) -> list[tuple[Any, ...]]:
    return [(g.id, [a.id for a in g.activities], g.activity_count, g.actor_count, g.first_ts, g.last_ts)
            for g in groups]


async def _like(feeds: Fanout, actor: str, owner: str, obj: str, when: datetime, verb: str = "like") -> Activity:
    """``actor`` likes ``obj``, sent to ``owner``'s feeds (actors are per owner: ids derive from them)."""
    return await feeds.add(actor=f"{owner}.{actor}", verb=verb, object=obj, time=when.isoformat(),
                           to=[f"aggregated:{owner}", f"notification:{owner}"])


async def test_groups_by_verb_and_day_with_counts_from_the_members(store: Store, unique_name: Names) -> None:
    owner = unique_name("owner")
    feeds = Fanout(store)
    a = await _like(feeds, "ann", owner, "p1", BASE)
    b = await _like(feeds, "bob", owner, "p2", BASE + timedelta(minutes=1))
    c = await _like(feeds, "ann", owner, "p2", BASE + timedelta(minutes=2))
    pin = await _like(feeds, "cid", owner, "p1", BASE + timedelta(minutes=3), verb="pin")
    old = await _like(feeds, "dan", owner, "p1", BASE - DAY)
    page = await feeds.read_aggregated(owner)
    assert _shape(page.groups) == [
        (page.groups[0].id, [pin.id], 1, 1, pin.ts, pin.ts),
        (page.groups[1].id, [c.id, b.id, a.id], 3, 2, a.ts, c.ts),
        (page.groups[2].id, [old.id], 1, 1, old.ts, old.ts),
    ]
    assert [g.verb for g in page.groups] == ["pin", "like", "like"] and page.next is None
    # the notification kind groups by verb, object and day
    notes = await feeds.notifications(owner)
    assert [[a.id for a in n.group.activities] for n in notes.groups] == [[pin.id], [c.id, b.id], [a.id], [old.id]]
    assert (notes.unseen, notes.unread) == (4, 4)


async def test_a_group_shows_its_newest_activities_up_to_the_maximum_and_counts_all(
    store: Store, unique_name: Names
) -> None:
    owner = unique_name("owner")
    feeds = Fanout(store, Settings(aggregated_max_activities=3))
    likes = [await _like(feeds, f"u{i % 4}", owner, "p", BASE + timedelta(seconds=i)) for i in range(7)]
    [group] = (await feeds.read_aggregated(owner)).groups
    assert [a.id for a in group.activities] == [x.id for x in reversed(likes[-3:])]
    assert (group.activity_count, group.actor_count) == (7, 4)
    assert (group.first_ts, group.last_ts) == (likes[0].ts, likes[-1].ts)


async def test_pages_by_group_with_stable_cursors(store: Store, unique_name: Names) -> None:
    owner = unique_name("owner")
    feeds = Fanout(store)
    for day in range(5):  # five groups, one a day, newest last
        await _like(feeds, "ann", owner, "p", BASE - day * DAY)
    first = await feeds.read_aggregated(owner, limit=2)
    await _like(feeds, "bob", owner, "p", BASE - 3 * DAY + timedelta(hours=1))  # a later group gets a member
    await _like(feeds, "bob", owner, "p", BASE - 0 * DAY + timedelta(hours=1))  # an already served one too
    second = await feeds.read_aggregated(owner, limit=2, before=first.next)
    third = await feeds.read_aggregated(owner, limit=2, before=second.next)
    walked = [g.last_ts for p in (first, second, third) for g in p.groups]
    days = [g.first_ts for p in (first, second, third) for g in p.groups]
    assert len(walked) == 5 and len(set(days)) == 5  # every group once, none repeated
    assert third.next is None and second.groups[1].activity_count == 2  # the changed group, with its member
    fresh = await feeds.read_aggregated(owner, limit=10)
    assert [g.activity_count for g in fresh.groups] == [2, 1, 1, 2, 1]  # the day-0 group moved up


async def test_a_remove_shrinks_its_group_and_the_last_one_removes_it(store: Store, unique_name: Names) -> None:
    owner = unique_name("owner")
    feeds = Fanout(store)
    first = await _like(feeds, "ann", owner, "p", BASE)
    second = await _like(feeds, "bob", owner, "p", BASE + timedelta(minutes=1))
    await feeds.remove(second.id, actor=second.actor)
    [group] = (await feeds.read_aggregated(owner)).groups
    assert ([a.id for a in group.activities], group.activity_count, group.actor_count) == ([first.id], 1, 1)
    assert group.key == first.key  # it moved down to its newest member
    await feeds.remove(first.id, actor=first.actor)
    assert (await feeds.read_aggregated(owner)).groups == ()
    assert (await feeds.notification_counts(owner)).unseen == 0


async def test_re_delivered_chunks_change_nothing(store: Store, unique_name: Names) -> None:
    owner = unique_name("owner")
    sink = Recorder()
    planner = Fanout(store, sink=sink)
    for i in range(4):
        await _like(planner, f"u{i}", owner, "p", BASE + timedelta(minutes=i))
    writer = TimelineWriter(store, max_length=1000, trim_every=50)
    await writer.write_chunks(sink.chunks)
    once = _shape((await planner.read_aggregated(owner)).groups)
    await writer.write_chunks(sink.chunks[::-1])
    await writer.write_chunks(sink.chunks)
    assert _shape((await planner.read_aggregated(owner)).groups) == once
    assert once[0][2:4] == (4, 4)


likes = st.lists(
    st.tuples(st.integers(0, 4), st.sampled_from(["like", "comment"]), st.integers(0, 2), st.integers(0, 2),
              st.integers(0, 3600), st.booleans()),
    min_size=1, max_size=10,
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(events=likes, order=st.randoms(use_true_random=False), batch=st.integers(1, 4))
async def test_any_order_of_the_same_chunks_gives_the_same_groups_and_counts(
    store: Store, events: list[tuple[int, str, int, int, int, bool]], order: random.Random, batch: int
) -> None:
    owner = f"owner_{uuid.uuid4().hex}"
    sink = Recorder()
    planner = Fanout(store, sink=sink)
    kept: dict[str, Activity] = {}
    gone: set[str] = set()
    for actor, verb, obj, day, second, removed in events:
        activity = await _like(planner, f"u{actor}", owner, f"p{obj}", BASE - day * DAY + timedelta(seconds=second),
                               verb=verb)
        if activity.id not in gone:  # an id once removed stays removed (the registry remembers)
            kept[activity.id] = activity
        if removed:
            await planner.remove(activity.id, actor=activity.actor)
            kept.pop(activity.id, None)
            gone.add(activity.id)
    chunks = sink.chunks + order.sample(sink.chunks, k=len(sink.chunks) // 2)  # some re-delivered
    order.shuffle(chunks)
    writer = TimelineWriter(store, max_length=1000, trim_every=50)
    for start in range(0, len(chunks), batch):
        await writer.write_chunks(chunks[start : start + batch])

    members = list(kept.values())
    expected: list[Group] = aggregate(members, verb_day, 15)
    assert _shape((await planner.read_aggregated(owner, limit=100)).groups) == _shape(expected)
    notes = await planner.notifications(owner, limit=100)
    assert _shape(n.group for n in notes.groups) == _shape(aggregate(members, verb_object_day, 15))
    assert notes.unseen == notes.unread == len(notes.groups)
