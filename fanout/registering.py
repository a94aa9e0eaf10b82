"""Registering a run of one actor's adds before its fanout: each add's registry row, then the
author's activity mark and user feed, once for the run.

An add is registered as ``fanout.core`` says ("Removes win"): read the registry, put the
activity, read again; an id removed meanwhile is not fanned out. The adds of a run with distinct
ids touch distinct registry rows, so they are registered together, concurrently, up to
``GROUP_MAX`` at once. An id seen again in the run starts a new group, registered after the
first: its second add sees the first one's row as it would one by one (a retry or a replay keeps
the first time). The actor's activity mark is read once, while the registry is (nothing the
registry does changes it; a mark written meanwhile by a reader stays, as ``set_active`` keeps the
newest), and written at most once, with the value marking each add in turn would leave
(``newest_mark``), at the same time as the adds go to the author's user feed in one writer call.
The actor's pull state (``fanout.pull``) is read while the registry is too, for ``Fanout``.

Why: one by one, an account that posts N times in a planner batch waited about six store round
trips a post before its followers' first chunk (the registry's three, the mark, the feed, the pull
state; seven when the mark is written), about 6N in all, at the latency of a node that the writers
keep busy; together and at once it is four for the run, then the first follower page
(``tests/unit/test_planning_rounds.py`` counts them).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable, Iterator, Sequence
from typing import Final, NamedTuple

from .activity import Activity
from .codec import ActivityEvent, event_time_us, to_activity
from .errors import InvalidEvent
from .feeds import feed_id
from .pull import PullPolicy
from .pushing import PlanResult
from .settings import Settings
from .settling import all_settled, result
from .store import PullState, RegistryEntry, Store, TimelineWrite
from .targeting import placed
from .targets import check_targets
from .writer import TimelineWriter

#: Adds registered at once at most (each holds a request at the store while it reads or writes).
GROUP_MAX: Final = 32

#: What registering an add gives: the activity to fan out, why not (a plan that skips it), or
#: why it was refused.
Registered = Activity | PlanResult | InvalidEvent


def newest_mark(last: int, times: Iterable[int], every: int) -> int | None:
    """The activity mark that marking a user active at each of ``times`` in turn leaves, given
    their mark ``last``: a time at least ``every`` after the mark before it is written (and becomes
    the mark), others are not; None when none is. Each mark written outranks the ones before it
    (``Store.set_active`` keeps the newest), so writing only this one ends the same."""
    mark = None
    for at in times:
        if at - last >= every:
            last = mark = at
    return mark


async def mark_active_at(store: Store, user: str, times: Iterable[int], window: int) -> None:
    """Mark ``user`` active at each of ``times`` in turn, as ``Fanout.mark_active`` does one at a
    time, with one read of their mark and at most one write (``due_mark``, ``write_mark``)."""
    mark = due_mark(await store.last_active(user), times, window)
    if mark is not None:
        await write_mark(store, user, mark, window)


def due_mark(last: int, times: Iterable[int], window: int) -> int | None:
    """The mark to write (``newest_mark``): a mark is written once it is a 14th of the active
    ``window`` (microseconds) old."""
    return newest_mark(last, times, window // 14)


async def write_mark(store: Store, user: str, mark: int, window: int) -> None:
    """Write ``user``'s activity mark ``mark``, active until a ``window`` later."""
    await store.set_active(user, mark + window, mark)


class Registration(NamedTuple):
    results: list[Registered]  # each add's outcome, in order
    pull_state: PullState | None  # the actor's (``PullPolicy.state``), read meanwhile; None: pushed or not read


class Registrar:
    def __init__(self, store: Store, settings: Settings, writer: TimelineWriter, window: int, pull: PullPolicy) -> None:
        self.store = store
        self.pull = pull
        self.settings = settings
        self.writer = writer
        self.window = window  # the active window (microseconds): a mark is written once a 14th of it old

    async def register(self, adds: Sequence[tuple[ActivityEvent, int]], now: int) -> Registration:
        """Register (event, accepted time) adds of one actor: their outcomes in order, and the
        actor's pull state; raises the first store failure once every call has settled (a retry
        registers the run again: every step is idempotent). Adds all refused by the codec's checks
        cost no store call."""
        out: list[Registered | None] = [None] * len(adds)
        checked: list[tuple[int, Activity]] = []
        for index, (event, accepted_ts) in enumerate(adds):
            try:
                event_time_us(event, accepted_ts, self.settings)  # refuses times out of range (reason "time")
                checked.append((index, to_activity(event, accepted_ts)))
            except InvalidEvent as exc:
                out[index] = exc
        last, state = 0, None
        if checked:  # the actor's activity mark and pull state read while the registry is
            actor = checked[0][1].actor
            registered, last_read, state_read = await asyncio.gather(
                self._register(checked, adds, out), self.store.last_active(actor), self.pull.state(actor),
                return_exceptions=True,
            )
            result(registered)
            last, state = result(last_read), result(state_read)
        results = [r for r in out if r is not None]
        if len(results) != len(adds):  # every slot is filled above: results line up with the events
            raise RuntimeError(f"registering {len(adds)} adds gave {len(results)} outcomes")
        accepted = [r for r in results if isinstance(r, Activity)]
        if accepted:  # the mark (read above) and the author's feed: written at once
            actor = accepted[0].actor  # a replayed old event is old activity: marked at its time
            mark = due_mark(last, (min(now, a.ts) for a in accepted), self.window)
            own = feed_id(self.settings.user_feed_kind, actor)
            writes = [self.writer.write([TimelineWrite(own, placed(a), a.ts) for a in accepted])]
            if mark is not None:
                writes.append(write_mark(self.store, actor, mark, self.window))
            await all_settled(writes)
        return Registration(results, state)

    async def _register(self, checked: list[tuple[int, Activity]], adds: Sequence[tuple[ActivityEvent, int]],
                        out: list[Registered | None]) -> None:
        """The registry's part of each checked add, group after group, into ``out``."""
        for group in _groups(checked):
            steps = [self._entry(activity, adds[index][0].to) for index, activity in group]
            for (index, _), outcome in zip(group, await _settled(steps), strict=True):
                out[index] = outcome

    async def _entry(self, activity: Activity, to: list[str] | None) -> Activity | PlanResult:
        """The registry's part of one add (``to``: its event's targets): the activity to fan out
        (the registered one, for a known id), or a plan that skips it."""
        entry = await self.store.get_activity(activity.id)
        _check_add(entry, activity)
        if entry is not None and entry.activity is not None:
            activity = entry.activity  # a known id is a replay or a retry: it keeps its first time (and targets)
        else:
            check_targets(to, self.settings)  # unknown kinds: reason "target" (not again on a replay)
        await self.store.put_activity(activity)
        if entry is None or not entry.removed:
            entry = await self.store.get_activity(activity.id)  # read again after the write: fanout.core
            _check_add(entry, activity)
        if entry is not None and entry.removed:
            return PlanResult(activity, "add", skipped="removed before it was added")
        return activity


def _check_add(entry: RegistryEntry | None, activity: Activity) -> None:
    if entry is not None and entry.activity is not None and entry.activity.actor != activity.actor:
        raise InvalidEvent(
            f"activity id {activity.id!r} already belongs to actor {entry.activity.actor!r}", reason="conflict"
        )


def _groups(checked: list[tuple[int, Activity]]) -> Iterator[list[tuple[int, Activity]]]:
    """The adds cut, in order, into groups of distinct ids of at most ``GROUP_MAX``."""
    group: list[tuple[int, Activity]] = []
    ids: set[str] = set()
    for item in checked:
        if item[1].id in ids or len(group) == GROUP_MAX:
            yield group
            group, ids = [], set()
        group.append(item)
        ids.add(item[1].id)
    if group:
        yield group


async def _settled(steps: Sequence[Awaitable[Activity | PlanResult]]) -> list[Activity | PlanResult | InvalidEvent]:
    """Every step's outcome (an ``InvalidEvent`` is one); the first other failure is raised after
    all have settled, so no step is left running. One step is awaited as it is (no task)."""
    if len(steps) == 1:
        try:
            return [await steps[0]]
        except InvalidEvent as exc:
            return [exc]
    outcomes: list[Activity | PlanResult | InvalidEvent] = []
    for outcome in await asyncio.gather(*steps, return_exceptions=True):
        if isinstance(outcome, BaseException) and not isinstance(outcome, InvalidEvent):
            raise outcome
        outcomes.append(outcome)
    return outcomes
