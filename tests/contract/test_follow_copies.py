"""On both stores, a follow into a full feed writes only the copies the feed keeps: one by one
(``Fanout.follow``) and as a run of one follower's follows (the follows agent's path, which reads
the follower's feeds in one request on Cassandra). A copy older than the feed's oldest kept entry
would be trimmed at once, a row tombstone each (``fanout.graph._Room``)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from fanout import Settings
from fanout.store import Store, TimelineWrite
from tests.contract.helpers import Names, act, make_fanout, whole

MAX = 10


@pytest.mark.parametrize("path", ["one by one", "a run"])
async def test_a_follow_into_a_full_feed_writes_only_the_copies_it_keeps(
    store: Store, settings: Settings, unique_name: Names, monkeypatch: pytest.MonkeyPatch, path: str
) -> None:
    fanout = make_fanout(store, settings, max_length=MAX, trim_every=5)
    reader, fresh = unique_name("reader"), unique_name("fresh")
    olds = [unique_name(f"old{i}") for i in range(5)]
    newest = [act(fresh, n) for n in range(1000, 1000 + MAX)]
    await store.apply([TimelineWrite(f"user:{fresh}", a, a.ts) for a in newest])
    for i, old in enumerate(olds):  # older than every post of ``fresh``, but two of the last one's
        late = [act(old, 2000), act(old, 2001)] if i == 4 else []
        posts = [*(act(old, n) for n in range(i * MAX, (i + 1) * MAX)), *late]
        await store.apply([TimelineWrite(f"user:{old}", a, a.ts) for a in posts])
    await fanout.follow(reader, fresh)
    assert await whole(store, f"timeline:{reader}") == [a.id for a in reversed(newest)]

    written: list[str] = []
    apply = store.apply

    async def counting(writes: Sequence[TimelineWrite]) -> None:
        written.extend(w.activity.id for w in writes if w.feed == f"timeline:{reader}" and not w.remove)
        await apply(writes)

    monkeypatch.setattr(store, "apply", counting)
    if path == "one by one":
        for old in olds:
            await fanout.follow(reader, old)
    else:
        await fanout.graph.apply_follows(reader, [(old, 1_800_000_000_000_000 + n, True) for n, old in enumerate(olds)])
    assert sorted(written) == [f"{olds[4]}-2000", f"{olds[4]}-2001"]  # before: 52 copies, 50 trimmed at once
    kept = await whole(store, f"timeline:{reader}")
    assert kept[:MAX] == [f"{olds[4]}-2001", f"{olds[4]}-2000", *[a.id for a in reversed(newest)][: MAX - 2]]
