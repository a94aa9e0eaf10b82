"""Hybrid fanout on both stores: a pulled account's posts are merged into its followers' timelines
when read (``fanout.pull``, ``fanout.pullmerge``), with the pushed entries' order, cursors and
remove/unfollow semantics, across crossings of the threshold both ways, each entry once.

Every scenario runs twice: on the store under test with a pull threshold of 4 followers, and on a
fresh ``MemoryStore`` with hybrid fanout off (the eager reference); every timeline, walked with
every page size and both cursors, must be the same."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from fanout import Activity, Fanout, MemoryStore, Settings, pullmerge
from fanout.feeds import feed_id
from fanout.pullmerge import merge_pages
from fanout.store import PullState, Store

from .helpers import act, at, ids

Names = Callable[[str], str]
THRESHOLD = 4


class Twin:
    """The same calls on the hybrid fanout under test and on the eager reference."""

    def __init__(self, store: Store, settings: Settings, unique_name: Names, **changes: Any) -> None:
        self.hybrid = Fanout(store, settings.replace(pull_threshold=THRESHOLD, chunk_size=2, **changes))
        self.eager = Fanout(MemoryStore(), settings.replace(pull_threshold=0, chunk_size=2, **changes))
        self.name = unique_name

    async def add(self, actor: str, n: int) -> Activity:
        fields: dict[str, Any] = {"actor": actor, "verb": "post", "object": f"post:{n}", "time": at(n),
                                  "id": f"{actor}-{n:03d}"}
        await self.eager.add(**fields)
        return await self.hybrid.add(**fields)

    async def remove(self, activity_id: str, actor: str) -> None:
        await self.eager.remove(activity_id, actor=actor)
        await self.hybrid.remove(activity_id, actor=actor)

    async def follow(self, follower: str, followee: str, on: bool = True) -> None:
        for fanout in (self.eager, self.hybrid):
            await (fanout.follow if on else fanout.unfollow)(follower, followee)

    async def pulled(self, account: str) -> PullState | None:
        return await self.hybrid.store.pull_state(account)

    async def assert_same(self, users: list[str]) -> None:
        for user in users:
            want = ids(await self.eager.read(user, limit=1000))
            assert ids(await self.hybrid.read(user, limit=1000)) == want, user
            for size in (1, 2, 3, 5):
                assert await _walk(self.hybrid, user, size) == want, (user, size)
                assert await _walk_back(self.hybrid, user, size, want) == want, (user, size)


async def _walk(fanout: Fanout, user: str, size: int) -> list[str]:
    """Every entry, page by page along ``before`` cursors (as the HTTP ``next`` does)."""
    out: list[str] = []
    while True:
        page = await fanout.read(user, limit=size, before=out[-1] if out else None)
        out.extend(ids(page))
        if len(page) < size:
            return out


async def _walk_back(fanout: Fanout, user: str, size: int, want: list[str]) -> list[str]:
    """Every entry, oldest page first, along ``after`` cursors from the oldest entry."""
    if not want:
        return []
    out = [want[-1]]
    while True:
        page = ids(await fanout.read(user, limit=size, after=out[0]))
        out = page + out
        if len(page) < size:
            return out


async def _network(twin: Twin, fans: int) -> tuple[str, str, list[str]]:
    """A big account followed by ``fans`` users, a small one followed by the first THRESHOLD of them."""
    big, small = twin.name("big"), twin.name("small")
    users = [twin.name(f"fan{i}") for i in range(fans)]
    for i, user in enumerate(users):
        await twin.follow(user, big)
        if i < THRESHOLD:
            await twin.follow(user, small)
    return big, small, users


async def test_a_pulled_account_is_merged_in_order_with_both_cursors(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    twin = Twin(store, settings, unique_name)
    big, small, users = await _network(twin, 6)
    for n in (3, 9, 1, 12, 7, 5):  # out of order, interleaved
        await twin.add(big, n)
        await twin.add(small, n + 20 if n % 2 else n)
    assert await twin.pulled(big) == PullState(act(big, 1).ts, 0)  # crossed up at its first post; 1 lowered it
    assert await twin.pulled(small) is None
    pushed = ids(await store.read(feed_id("timeline", users[0]), limit=100))
    assert not [i for i in pushed if i.startswith(big)]  # nothing of the big account was written to timelines
    assert len(ids(await twin.hybrid.read(users[0], limit=100))) == 12
    await twin.assert_same([*users, big, small])
    assert ids(await twin.hybrid.read(big, kind="user", limit=100)) == ids(await twin.eager.read(big, kind="user",
                                                                                                    limit=100))


async def test_an_aggregated_followers_kind_merges_pulled_accounts_too(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    twin = Twin(store, settings, unique_name, feed_kinds=("timeline", "aggregated"))
    big, small, users = await _network(twin, 6)
    for n in (3, 9, 1):
        await twin.add(big, n)
        await twin.add(small, n + 20)
    assert await twin.pulled(big) is not None
    for user in users:
        want = await twin.eager.read_aggregated(user, limit=100)
        got = await twin.hybrid.read_aggregated(user, limit=100)
        assert [sorted(ids(list(g.activities))) for g in got.groups] == \
            [sorted(ids(list(g.activities))) for g in want.groups], user
        assert any(a.actor == big for g in got.groups for a in g.activities), user


@pytest.mark.parametrize("edge_reads", [16, 0], ids=["edge-reads", "follows-read"])
async def test_removes_and_unfollows_hide_merged_posts(
    store: Store, settings: Settings, unique_name: Names, edge_reads: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(pullmerge, "EDGE_READS", edge_reads)  # both ways of finding the followed pulled accounts
    twin = Twin(store, settings, unique_name)
    big, small, users = await _network(twin, 5)
    for n in range(1, 7):
        await twin.add(big, n)
        await twin.add(small, n + 10)
    await twin.remove(f"{big}-003", big)
    await twin.remove(f"{small}-012", small)
    await twin.follow(users[0], big, on=False)  # an unfollowed account's posts stop appearing
    await twin.assert_same(users)
    assert not [i for i in ids(await twin.hybrid.read(users[0], limit=100)) if i.startswith(big)]
    await twin.follow(users[0], big)  # ... and come back with a re-follow, each once
    await twin.add(big, 30)
    await twin.assert_same(users)


async def test_posts_pushed_before_the_crossing_stay_and_appear_once(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    twin = Twin(store, settings, unique_name)
    big, _, users = await _network(twin, 3)
    for n in (10, 11, 12):
        await twin.add(big, n)  # 3 followers: pushed
    for user in [twin.name(f"late{i}") for i in range(3)]:
        await twin.follow(user, big)
        users.append(user)
    await twin.add(big, 5)  # 6 followers: crosses up; since = 5, so 10-12 are pushed and merged
    assert await twin.pulled(big) == PullState(act(big, 5).ts, 0)
    await twin.add(big, 2)  # an older post while pulled lowers `since`
    assert await twin.pulled(big) == PullState(act(big, 2).ts, 0)
    await twin.assert_same(users)
    await twin.remove(f"{big}-011", big)  # a pushed copy of a pulled account goes too
    await twin.assert_same(users)


async def test_crossing_down_backfills_then_stops_merging_and_crossing_up_again(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    twin = Twin(store, settings, unique_name, pull_drain_seconds=0)
    big, small, users = await _network(twin, 6)
    for n in (1, 2, 3):
        await twin.add(big, n)
    assert (await twin.pulled(big) or PullState(0)).leaving == 0
    for user in users[2:]:
        await twin.follow(user, big, on=False)  # 2 followers left: at most half the threshold
    await twin.assert_same(users)
    await twin.add(big, 4)  # crosses down: leaving, and 1-3 pushed to the 2 followers
    state = await twin.pulled(big)
    assert state is not None and state.leaving > 0 and state.since == act(big, 1).ts
    pushed = ids(await store.read(feed_id("timeline", users[0]), limit=100))
    assert [i for i in pushed if i.startswith(big)] == [f"{big}-{n:03d}" for n in (4, 3, 2, 1)]
    await twin.assert_same(users)
    await twin.add(big, 5)  # after the drain: merged no more, nothing missing
    assert await twin.pulled(big) is None
    await twin.assert_same(users)
    for user in users[2:]:
        await twin.follow(user, big)
    await twin.add(big, 6)  # up again
    assert await twin.pulled(big) == PullState(act(big, 6).ts, 0)
    await twin.add(small, 7)
    await twin.assert_same(users)


async def test_a_crossing_post_reaches_the_followers_before_the_threshold_once(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    twin = Twin(store, settings, unique_name)
    twin.hybrid.followers.page_size = 2  # type: ignore[attr-defined]  # pages of 2: the fanout stops mid-way
    big, _, users = await _network(twin, 7)
    activity = await twin.add(big, 1)
    reached = [u for u in users if ids(await store.read(feed_id("timeline", u), limit=10)) == [activity.id]]
    assert 0 < len(reached) <= THRESHOLD  # pushed to the first pages, then pulled
    await twin.assert_same(users)


def test_merge_pages_keeps_each_key_once_in_key_order() -> None:
    a, b, c = act("x", 1), act("y", 2), act("x", 3)
    assert merge_pages([[c, a], [c, b], []], 10) == [c, b, a]
    assert merge_pages([[c, a], [b]], 2) == [c, b]
    assert merge_pages([[c, a], [b]], 2, newest=False) == [b, a]
