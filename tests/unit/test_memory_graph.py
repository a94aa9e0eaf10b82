"""The in-memory follow graph's pages (``fanout.memorygraph``): a followee with no edge off has its
pages cut without a look at each edge; the pages are the same as with the look."""

from __future__ import annotations

import random

import pytest

from fanout import MemoryStore

T0 = 1_700_000_000_000_000


def checked_pages(store: MemoryStore, followee: str, page_size: int) -> list[list[str]]:
    """The reference: every page's keys, each edge looked at."""
    edges = store._edges.get(followee, {})
    keys = list(edges)
    pages = [[f for f in keys[i : i + page_size] if edges[f][1]] for i in range(0, len(keys), page_size)]
    return [page for page in pages if page]


async def pages(store: MemoryStore, followee: str, page_size: int) -> list[list[str]]:
    return [[row.follower for row in page] async for page in store.followers(followee, page_size=page_size)]


@pytest.mark.parametrize("seed", range(20))
async def test_pages_equal_the_checked_pages_and_the_edges_off_are_exact(seed: int) -> None:
    rng = random.Random(seed)
    store = MemoryStore()
    followees = ["a", "b", "c"]
    for _ in range(400):  # follows, unfollows, refollows, repeats and older writes, in any order
        await store.set_follow(f"u{rng.randrange(60)}", rng.choice(followees), rng.random() < 0.7,
                               T0 + rng.randrange(50))
        for followee in followees:
            off = {f: at for f, (at, on) in store._edges.get(followee, {}).items() if not on}
            assert store._edges_off.get(followee, {}) == off  # the edges off, with their timestamps
            assert await store.unfollowed(followee, [f"u{i}" for i in range(0, 60, 2)]) == {
                f: at for f, at in off.items() if int(f[1:]) % 2 == 0
            }
            size = rng.choice([1, 3, 7, 100])
            assert await pages(store, followee, size) == checked_pages(store, followee, size)
            assert [h + low async for h, low in store.priority_pages(followee, T0, size)] == checked_pages(
                store, followee, size)  # nobody active: every follower LOW, in page order


async def test_an_edge_turned_off_or_on_between_pages_is_seen_when_its_page_is_cut() -> None:
    store = MemoryStore()
    for i in range(6):
        await store.set_follow(f"u{i}", "star", True, T0)
    assert "star" not in store._edges_off  # all on: pages are cut as they are
    seen = []
    async for page in store.followers("star", page_size=2):
        seen.append([row.follower for row in page])
        if len(seen) == 1:
            await store.set_follow("u3", "star", False, T0 + 1)  # off before its page is cut
            await store.set_follow("u9", "star", True, T0 + 1)  # new: not in the keys taken at the start
    assert seen == [["u0", "u1"], ["u2"], ["u4", "u5"]]
    await store.set_follow("u3", "star", True, T0 + 2)
    assert "star" not in store._edges_off  # on again: the count is back to none
    assert await pages(store, "star", 4) == [["u0", "u1", "u2", "u3"], ["u4", "u5", "u9"]]
