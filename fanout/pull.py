"""Hybrid fanout, the planning side: accounts with more than ``FANOUT_PULL_THRESHOLD`` followers
are not fanned out; their followers' reads merge their user feeds in (``fanout.pullmerge``).

The store keeps a small registry of *pulled* accounts (``Store.pull_state``): for each, ``since``
(the oldest activity time that may not have been pushed: reads merge the account's user-feed
entries at or after it) and ``leaving`` (0 while pulled; the time it crossed down otherwise).
Only the planner of the account's partition writes its state, one event at a time.

Crossing up (pushed -> pulled), while an add is fanned out: the followers are counted as they
are streamed; when the count passes the threshold, the state is written (``since`` = the
activity's time, or an older ``since`` it had) and the fanout stops. The followers already
reached keep their pushed entry; the others get it from the merge, which drops duplicates by key.
Entries pushed before the crossing stay in the timelines.

While pulled, an add writes the registry and the author's user feed only (and its trace: a plan
of no chunks). An add older than ``since`` lowers ``since``, so every post not pushed stays at or
after it. Removes are always fanned out (rare; a post pushed before the crossing must go too).

Crossing down (pulled -> pushed), at an add of a pulled account whose followers are at most
half the threshold (hysteresis: an account near the threshold does not flap; counting stops at
half the threshold + 1): every user-feed entry at or after ``since`` is pushed to the current
followers (the backfill: what was never pushed), then the state becomes *leaving* (reads still
merge it; written after the backfill, so a retry of a failed backfill finds the account pulled
and backfills again: ``Fanout._fan_planned``), then the add itself is pushed. A later add,
``FANOUT_PULL_DRAIN_SECONDS`` after the crossing (time for the pipeline's writers to land the
backfill), drops the state: reads stop merging.
A leaving account that passes the threshold again is pulled again, keeping its ``since``.

So nothing is lost or doubled: an entry is pushed, or at or after ``since`` and merged, or
both (de-duplicated). The clock only decides when a leaving account stops being merged, never
which entries a timeline ends with. Hybrid fanout needs the store's follow graph (the default
``ActiveWindowPolicy``): with a custom follower source it is off.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from .activity import Activity
from .feeds import feed_id
from .followers import FollowerPage, FollowerSource
from .settings import Settings
from .store import PullState, Store


@dataclass(slots=True)
class PullPlan:
    """What to do with an add: nothing more (``pulled``), or push ``backfill`` and then the add."""

    pulled: bool = False
    backfill: list[Activity] = field(default_factory=list)
    state: PullState | None = None  # the state before this add (None: pushed)
    # crossing down: the state to write once the backfill is pushed (not before: a retry after a
    # failure during the backfill must find the account still pulled and backfill again)
    leaving: PullState | None = None


class PullPolicy:
    def __init__(self, store: Store, settings: Settings, followers: FollowerSource, *, enabled: bool) -> None:
        self.store = store
        self.settings = settings
        self.followers = followers
        self.threshold = settings.pull_threshold
        self.enabled = enabled and self.threshold > 0
        self.drain_us = int(settings.pull_drain_seconds * 1_000_000)

    async def state(self, actor: str) -> PullState | None:
        """``actor``'s pull state for ``plan`` (None, unread, when hybrid fanout is off). Only the
        planning of ``actor``'s adds writes it, one run after another: read while the run is
        registered, it is the state ``plan`` would read after."""
        return await self.store.pull_state(actor) if self.enabled else None

    async def plan(self, activity: Activity, now: int, state: PullState | None) -> PullPlan:
        """The decision for an add of ``activity`` (already in its author's user feed), given its
        author's pull ``state`` (read by ``state``)."""
        if not self.enabled or state is None:
            return PullPlan()
        actor = activity.actor
        if state.leaving:
            if now - state.leaving >= self.drain_us:
                await self.store.set_pull_state(actor, None)  # merged no more: the backfill has landed
            return PullPlan(state=state)
        if await self._more_than(actor, self.threshold // 2, now):
            if activity.ts < state.since:
                await self.store.set_pull_state(actor, PullState(activity.ts, 0))
            return PullPlan(pulled=True, state=state)
        own = feed_id(self.settings.user_feed_kind, actor)
        entries = await self.store.read(own, limit=self.settings.max_length)
        backfill = [a for a in entries if a.ts >= state.since and a.id != activity.id]
        return PullPlan(backfill=backfill, state=state, leaving=PullState(state.since, now))  # still merged

    async def watch(
        self, activity: Activity, state: PullState | None, pages: AsyncIterator[FollowerPage]
    ) -> AsyncIterator[FollowerPage]:
        """``pages`` until the followers counted pass the threshold: then the account is pulled
        (crossing up) and the rest of the followers get ``activity`` from the merge."""
        if not self.enabled:
            async for page in pages:
                yield page
            return
        seen = 0
        try:
            async for priority, ids in pages:
                seen += len(ids)
                if seen > self.threshold:
                    since = activity.ts if state is None else min(state.since, activity.ts)
                    await self.store.set_pull_state(activity.actor, PullState(since, 0))
                    return
                yield priority, ids
        finally:
            await _close(pages)

    async def _more_than(self, actor: str, bound: int, now: int) -> bool:
        seen = 0
        pages = self.followers.pages(actor, now)
        try:
            async for _, ids in pages:
                seen += len(ids)
                if seen > bound:
                    return True
        finally:
            await _close(pages)
        return False


async def _close(pages: AsyncIterator[FollowerPage]) -> None:
    """Stop a follower stream left early (an async generator holds a database cursor)."""
    aclose = getattr(pages, "aclose", None)
    if aclose is not None:
        await aclose()


class MemoryPulledAccounts:
    """The pulled-accounts part of ``Store`` in memory (a mixin of ``MemoryStore``)."""

    def __init__(self) -> None:
        self._pulled: dict[str, PullState] = {}

    async def pull_state(self, account: str) -> PullState | None:
        return self._pulled.get(account)

    async def pulled_accounts(self) -> dict[str, PullState]:
        return dict(self._pulled)

    async def set_pull_state(self, account: str, state: PullState | None) -> None:
        if state is None:
            self._pulled.pop(account, None)
        else:
            self._pulled[account] = state
