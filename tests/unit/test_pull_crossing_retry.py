"""Hybrid fanout: a failure while crossing down loses no pulled post (a review found the state
written 'leaving' before the backfill was pushed: a retry then skipped the backfill)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fanout import MemoryStore, StoreError
from fanout.store import PriorityPage

from .test_post_runs import SETTINGS, T0, network


class FollowerReadTimesOutOnce(MemoryStore):
    """Once armed: the second read of the follower pages (the backfill's pass, after the
    crossing-down count) times out after its first page, once."""

    def __init__(self) -> None:
        super().__init__()
        self.passes = -1_000_000

    async def priority_pages(self, followee: str, now: int, page_size: int) -> AsyncIterator[PriorityPage]:
        self.passes += 1
        fail = self.passes == 2
        async for page in super().priority_pages(followee, now, page_size):
            yield page
            if fail:
                raise StoreError("timeout", retriable=True)


async def test_a_timeout_while_crossing_down_loses_no_pulled_post() -> None:
    """(Pre-existing, fanout/pull.py; a run inherits it.) An account pulled since before ``old``
    crosses down at ``new``: the state is written 'leaving' before the backfill is pushed. A
    timeout reading the followers for the backfill and the planner's retry: the retry finds 'leaving', so no backfill;
    once the drain is over, the state is dropped, reads stop merging, and ``old`` - never pushed -
    is gone from every follower's timeline."""
    from fanout import Fanout
    from fanout.codec import activity_event
    from fanout.store import PullState

    timelines = []
    for store in (FollowerReadTimesOutOnce(), MemoryStore()):
        await network(store, 0)  # a: 130 followers
        await store.set_pull_state("a", PullState(T0, 0))  # a is pulled
        while_pulled = Fanout(store, SETTINGS.replace(pull_threshold=200, feed_kinds=("timeline",)))
        old = activity_event(actor="a", verb="pin", object="o-old", id="old")
        assert (await while_pulled.handle_activity(old, T0 + 1)).skipped.startswith("pulled")  # 130 > 200 // 2
        fanout = Fanout(store, SETTINGS.replace(pull_threshold=400, feed_kinds=("timeline",)))  # 130 <= 200: down
        if isinstance(store, FollowerReadTimesOutOnce):
            store.passes = 0  # arm it
        new = activity_event(actor="a", verb="pin", object="o-new", id="new")
        for _ in range(3):  # retry_store: a retriable error plans the event again
            try:
                await fanout.handle_activity(new, T0 + 2)
                break
            except StoreError:
                continue
        state = await store.pull_state("a")
        assert state is not None and state.leaving
        await store.set_pull_state("a", PullState(state.since, 1))  # the drain is over
        await fanout.handle_activity(activity_event(actor="a", verb="pin", object="o-later", id="later"), T0 + 3)
        assert await store.pull_state("a") is None
        timelines.append({f"f{n}": [a.id for a in await fanout.read(f"f{n}", limit=10)] for n in range(130)})
    assert set(map(tuple, timelines[1].values())) == {("later", "new", "old")}
    missing = sorted(f for f, ids in timelines[0].items() if "old" not in ids)
    assert not missing, f"after a timeout while crossing down, {len(missing)} of 130 lost 'old': {missing[:5]}"
