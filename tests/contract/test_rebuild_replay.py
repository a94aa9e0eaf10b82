"""``Fanout.rebuild`` gives what a replay gives (issue 10, item 4), on both stores.

Rebuild re-applies each current follow as a replay of its latest follow would, so an unfollow
still in flight wins over it, and it refills a timeline below an earlier trim. The references are
computed with the replay's own code (``tests/contract/history.py``) on a fresh memory store.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from fanout import Fanout, MemoryStore, Settings, Store
from tests.contract.history import History, apply, merged, replayed

Names = Callable[[str], str]
T = 1_704_067_200_000  # 2024-01-01T00:00:00Z in epoch milliseconds: long before any rebuild runs


async def timeline(store: Store, user: str) -> list[str]:
    return [a.id for a in await store.read(f"timeline:{user}", limit=1000)]


async def test_an_unfollow_in_flight_wins_over_a_rebuild(store: Store, settings: Settings, unique_name: Names) -> None:
    """The unfollow was produced before the rebuild ran (its record is older than the rebuild's
    clock) and is applied after it: it still removes the followee's entries."""
    reader, author, other = unique_name("reader"), unique_name("author"), unique_name("other")
    h = History(settings)
    live = [h.follow(reader, author, T), h.follow(reader, other, T + 1),
            *(h.post(author, f"{author}-{n}", T + 10 + n) for n in range(3)), h.post(other, f"{other}-0", T + 20)]
    in_flight = h.unfollow(reader, author, T + 100)
    fanout = Fanout(store, settings)
    await apply(fanout, *live)
    assert await fanout.rebuild(reader) == 4
    await apply(fanout, in_flight)

    assert await timeline(store, reader) == [f"{other}-0"]
    reference = await replayed(settings, MemoryStore(), h.records)
    assert await timeline(store, reader) == await timeline(reference.store, reader)


async def test_rebuild_equals_a_full_replay_of_a_mixed_history(
    store: Store, settings: Settings, unique_name: Names
) -> None:
    """Follows, unfollows, re-follows, removes and posts in any order; rebuilds along the way and at
    the end: the timeline is what a full replay of the history gives."""
    settings = settings.replace(max_length=200, trim_every=1)  # no trims here: see the next test
    rng = random.Random(11)
    reader = unique_name("reader")
    authors = [unique_name(f"a{i}") for i in range(4)]
    h = History(settings)
    fanout = Fanout(store, settings)
    posted: list[tuple[str, str]] = []
    following: set[str] = set()
    for step in range(120):
        ts = T + 1000 * step
        roll = rng.random()
        if roll < 0.2:
            author = rng.choice(authors)
            record = (h.unfollow if author in following else h.follow)(reader, author, ts)
            following ^= {author}
        elif roll < 0.28 and posted:
            author, activity_id = posted.pop(rng.randrange(len(posted)))
            record = h.post(author, activity_id, ts, op="remove")
        else:
            author = rng.choice(authors)
            activity_id = f"{author}-{step}"
            posted.append((author, activity_id))
            record = h.post(author, activity_id, ts)
        await apply(fanout, record)
        if step % 25 == 0:
            await fanout.rebuild(reader)

    reference = await replayed(settings, MemoryStore(), h.records)
    want = await timeline(reference.store, reader)
    assert len(want) > 10 and sorted(await store.following(reader)) == sorted(following)
    assert await timeline(store, reader) == want  # the rebuilds along the way changed nothing a replay would not
    assert await fanout.rebuild(reader) == len(want)
    assert await timeline(store, reader) == want


async def test_rebuild_refills_below_an_earlier_trim(store: Store, settings: Settings, unique_name: Names) -> None:
    """A prolific account pushed the other followees' entries out by trimming; after unfollowing it
    the live timeline is empty. Rebuild fills it with what it reports: the newest entries of the
    current followees, as a replay of every activity onto the current follows gives."""
    settings = settings.replace(max_length=4, trim_every=1)
    reader, quiet, loud = unique_name("reader"), unique_name("quiet"), unique_name("loud")
    h = History(settings)
    records = [h.follow(reader, quiet, T), *(h.post(quiet, f"{quiet}-{n}", T + 10 + n) for n in range(4)),
               h.follow(reader, loud, T + 100), *(h.post(loud, f"{loud}-{n}", T + 200 + n) for n in range(6)),
               h.unfollow(reader, loud, T + 300)]
    fanout = Fanout(store, settings)
    await apply(fanout, *records)
    assert await timeline(store, reader) == []

    assert await fanout.rebuild(reader) == 4
    assert await timeline(store, reader) == [f"{quiet}-{n}" for n in (3, 2, 1, 0)]
    onto_current = Fanout(MemoryStore(), settings)  # the current follows first, then every activity
    await onto_current.follow(reader, quiet)
    await apply(onto_current, *(r for r in merged(settings, records) if r.topic == settings.topic("activities")))
    assert await timeline(store, reader) == await timeline(onto_current.store, reader)
