"""The operations of fanout, one async API for the eager mode and the Kafka pipeline.

``Fanout`` plans an activity (registry, author's feed, follower chunks) and hands each chunk to
a ``ChunkSink``. In the eager mode the sink is the ``TimelineWriter`` itself, in-process; in the
pipeline it is a Kafka producer and writer agents apply the chunks. Everything else - follows,
reads, imports, rebuilds - is the same code in both modes. Follows, unfollows and rebuilds are
``FollowGraph``'s (``fanout.graph``).

Removes win, produced anywhere, in any order
    An add and its remove may be planned at once (two partitions of one batch, two planners), each
    a read of the registry and a write. Each side writes first and reads again after:

    * add: ``put_activity``, then read; removed -> nothing is written or fanned out;
    * remove: ``mark_removed``, then read (when the first read found no activity); known -> the
      removal is fanned out (the author's feed and every follower's, at ``REMOVED_WRITE_TS``).

    The registry is one row per id, so the add's put and the remove's mark are ordered. If the put
    came first, the remove's read (after its mark) sees the activity and fans the removal out, which
    outranks every add written anywhere, before or after. If the mark came first, the add's read
    (after its put) sees the removal and the add stops before its first timeline write. A removal
    fanned out reaches the followers of its planning time; a follower who unfollowed before that
    and whose add chunk was still in flight is covered by the writer (``TimelineWriter``: an add
    chunk whose activity was removed is written again as a remove) and by the unfollow's deletes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from .activity import REMOVED_WRITE_TS, Activity, now_micros
from .aggregation import GroupPage, page
from .codec import (
    ActivityEvent,
    ChunkMessage,
    FollowEvent,
    activity_event,
    event_time_us,
    follow_event,
    remove_event,
    removed_id,
)
from .errors import ForeignActivity, InvalidEvent, UnknownActivity
from .feeds import feed_id
from .followers import ActiveWindowPolicy, FollowerSource
from .graph import FollowGraph
from .grouping import GroupingRule
from .notifications import AggregatedFeeds, Counts, NotificationPage
from .pull import PullPlan, PullPolicy
from .pullmerge import MergedReader
from .pushing import ChunkSink, PlanResult, Pusher
from .registering import Registrar, mark_active_at
from .settings import Settings
from .store import Key, PullState, RegistryEntry, Store, TimelineWrite
from .tracing import Delivery, delivery_report
from .writer import TimelineWriter

_DAY_US = 86_400 * 1_000_000


class _EagerSink:
    def __init__(self, writer: TimelineWriter) -> None:
        self.writer = writer

    async def send(self, chunk: ChunkMessage) -> None:
        await self.writer.write_chunks([chunk])


class Fanout:
    """The feed system. ``async with Fanout(store) as fanout: await fanout.add(...)``."""

    def __init__(
        self,
        store: Store,
        settings: Settings | None = None,
        *,
        followers: FollowerSource | None = None,
        sink: ChunkSink | None = None,
        grouping: Mapping[str, GroupingRule] | None = None,
    ) -> None:
        self.store = store
        self.settings = settings or Settings()
        self.followers = followers or ActiveWindowPolicy(store, page_size=self.settings.follower_page_size)
        self.writer = TimelineWriter(
            store,
            max_length=self.settings.max_length,
            trim_every=self.settings.trim_every,
            tracked_feeds=self.settings.trim_tracked_feeds,
            # the writer's look at the edges (an unfollow wins over chunks in flight) trusts the
            # store's follow graph: not with a follower source of the caller's (``follower_hook``)
            follower_kinds=self.settings.feed_kinds if followers is None else (),
        )
        self.sink: ChunkSink = sink or _EagerSink(self.writer)
        self.graph = FollowGraph(store, self.settings, self.writer)
        hybrid = followers is None  # hybrid fanout needs the store's follow graph (fanout.pull)
        self.pull = PullPolicy(store, self.settings, self.followers, enabled=hybrid)
        self._window = int(self.settings.active_window_days * _DAY_US)
        self.pusher = Pusher(store, self.settings, self.followers, self.pull, self._window)
        self.registrar = Registrar(store, self.settings, self.writer, self._window, self.pull)
        self.reader = MergedReader(store, self.settings, enabled=hybrid)  # every feed read goes through it
        self.aggregated = AggregatedFeeds(store, self.settings, grouping, self.reader)  # rules: settings, `grouping`

    async def __aenter__(self) -> Fanout:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        await self.store.close()

    # publishing ------------------------------------------------------------------------
    async def add(self, event: ActivityEvent | Mapping[str, Any] | None = None, **fields: Any) -> Activity:
        """Add an activity: ``await fanout.add(actor="42", verb="pin", object="7")``; returns it
        (with its id and time). ``handle_activity`` returns the plan's details."""
        add = _activity_event(event, fields, op="add")
        if add.op != "add":  # an unknown id's remove has no activity to return: silent in ``remove``
            raise InvalidEvent("Fanout.add takes an add; remove with Fanout.remove(id, actor=...) "
                               "(or handle_activity, which takes either)", reason="schema")
        result = await self.handle_activity(add)
        if result.activity is None:  # an add always plans an activity
            raise RuntimeError(f"planning an add produced no activity: {result}")
        return result.activity

    async def remove(self, activity_id: str, *, actor: str) -> Activity | None:
        """Remove an activity from every feed it reached; returns it, or None when it was never
        seen (silent: the removal is recorded, so a later add of that id is not fanned out)."""
        result = await self.handle_activity(remove_event(activity_id, actor=actor))
        return result.activity

    async def handle_activity(self, event: ActivityEvent, accepted_ts: int | None = None) -> PlanResult:
        """Plan one activity event: the registry, the author's feed, then a chunk per follower group.

        ``accepted_ts`` is the event's time when it carries none (the Kafka record timestamp in
        the pipeline, so replays derive the same id).
        """
        outcome = (await self.handle_activities([(event, accepted_ts)]))[0]
        if isinstance(outcome, InvalidEvent):
            raise outcome
        return outcome

    async def handle_activities(
        self, events: Sequence[tuple[ActivityEvent, int | None]]
    ) -> list[PlanResult | InvalidEvent]:
        """Plan (event, ``accepted_ts``) pairs in order: each one's result, or the ``InvalidEvent``
        that refused it (the others are planned). Consecutive adds of one actor are registered
        together and written to the author's feed in one call (``fanout.registering``), then fanned
        out in one pass over the actor's followers (``fanout.pushing``): N posts of an account read
        its followers once."""
        now = now_micros()
        out: list[PlanResult | InvalidEvent] = []
        adds: list[tuple[ActivityEvent, int]] = []  # consecutive adds of one actor, not planned yet
        for event, accepted_ts in events:
            accepted = accepted_ts if accepted_ts is not None else now_micros()  # each its own, as one by one
            if adds and (event.op == "remove" or event.actor != adds[0][0].actor):
                await self._plan_adds(adds, out, now)
            if event.op != "remove":
                adds.append((event, accepted))
                continue
            try:
                out.append(await self._plan_remove(event, accepted, now))
            except InvalidEvent as exc:
                out.append(exc)
        await self._plan_adds(adds, out, now)
        return out

    async def _plan_adds(
        self, adds: list[tuple[ActivityEvent, int]], out: list[PlanResult | InvalidEvent], now: int
    ) -> None:
        """Register one actor's adds, then fan out those to be fanned out, as one run."""
        registration = await self.registrar.register(adds, now)  # the pull state read meanwhile
        run: list[tuple[int, Activity]] = []  # (index in out, activity)
        for registered in registration.results:
            if isinstance(registered, Activity):
                run.append((len(out), registered))
                registered = PlanResult(registered, "add")  # replaced by its fanout's result
            out.append(registered)
        adds.clear()
        await self._fan_run(run, out, now, registration.pull_state)

    async def _plan_remove(self, event: ActivityEvent, accepted: int, now: int) -> PlanResult:
        activity_id = removed_id(event)  # the codec's rule: `id`, or the add's content and time
        entry = await self.store.get_activity(activity_id)
        _check_remove(entry, activity_id, event.actor)
        await self.store.mark_removed(activity_id)
        if entry is None or entry.activity is None:
            entry = await self.store.get_activity(activity_id)  # read again after the write: see above
            _check_remove(entry, activity_id, event.actor)
        if entry is None or entry.activity is None:
            return PlanResult(None, "remove", skipped="unknown activity (removal recorded)")
        activity = entry.activity
        own = feed_id(self.settings.user_feed_kind, activity.actor)
        await self.writer.write([TimelineWrite(own, activity, REMOVED_WRITE_TS, remove=True)])
        return (await self.pusher.push(self.sink, [(activity, REMOVED_WRITE_TS)], "remove", now))[0]

    async def _fan_run(
        self, run: list[tuple[int, Activity]], out: list[PlanResult | InvalidEvent], now: int, state: PullState | None
    ) -> None:
        """Fan out a run's adds (``out[index]`` gets each result): each one's pull plan in turn
        (``fanout.pull``, the first one's from ``state``, read before); those simply pushed go
        together, the others on their own, in order. An account read as pushed (no pull state)
        stays so for the rest of the run: only a push writes its state, and the run's are after
        this loop; after an add planned on its own, the state is read again."""
        together: list[tuple[int, Activity]] = []
        for n, (index, activity) in enumerate(run):
            if n and not together:  # the add before was planned on its own: it may have written the state
                state = await self.pull.state(activity.actor)
            # hybrid fanout: pulled, pushed, or crossing down
            plan = PullPlan() if together else await self.pull.plan(activity, now, state)
            if plan.backfill:  # crossing down: the run's later adds are in the author's feed already,
                later = {a.id for _, a in run[n + 1 :]}  # but pushed after this one, as one by one
                plan.backfill = [a for a in plan.backfill if a.id not in later]
            if not (plan.pulled or plan.backfill or plan.state is not None):
                together.append((index, activity))
                continue
            await self._push_together(together, out, now)
            out[index] = await self._fan_planned(activity, plan, now)
        await self._push_together(together, out, now)
        run.clear()

    async def _push_together(
        self, together: list[tuple[int, Activity]], out: list[PlanResult | InvalidEvent], now: int
    ) -> None:
        if together:  # watched: a pass that crosses the pull threshold merges all of them from then on
            results = await self.pusher.push(self.sink, [(a, a.ts) for _, a in together], "add", now, watch=True)
            for (index, _), result in zip(together, results, strict=True):
                out[index] = result
            together.clear()

    async def _fan_planned(self, activity: Activity, plan: PullPlan, now: int) -> PlanResult:
        if plan.pulled:  # its `to` targets are still pushed: they are not followers
            result = await self.pusher.send_targets(self.sink, activity, "add", activity.ts, now)
            result.skipped = "pulled: merged into the followers' timelines when read"
            return result
        for missed in plan.backfill:  # crossing down: what was never pushed
            await self.pusher.push(self.sink, [(missed, missed.ts)], "add", now)
        if plan.leaving is not None:  # only now: a retry of a failed backfill must find it pulled
            await self.store.set_pull_state(activity.actor, plan.leaving)
        pushed = await self.pusher.push(self.sink, [(activity, activity.ts)], "add", now, watch=True, state=plan.state)
        return pushed[0]

    async def import_activities(self, actor: str, activities: Iterable[ActivityEvent | Mapping[str, Any]]) -> int:
        """Bulk-load ``actor``'s history; every activity must be ``actor``'s (checked first)."""
        events = [_activity_event(a, {}, op="add") for a in activities]
        for event in events:
            if event.actor != actor:
                raise ForeignActivity(
                    f"bulk import for {actor!r} got an activity of {event.actor!r}; nothing was imported"
                )
        for event in events:
            await self.handle_activity(event)
        return len(events)

    # follows ---------------------------------------------------------------------------
    async def follow(self, follower: str, followee: str, *, at: int | None = None) -> int:
        """Follow, and copy the newest ``follow_activity_limit`` activities; returns how many.

        ``at``: the clock the call is ordered by (microseconds; default: now). Calls for one
        follower are applied in order: the later call wins whatever its ``at`` says."""
        return await self.handle_follow(_follow_event(follower, followee, "follow"), at)

    async def unfollow(self, follower: str, followee: str, *, at: int | None = None) -> int:
        """Unfollow, and remove the followee's activities from the follower's feeds (``at``: as
        for ``follow``)."""
        return await self.handle_follow(_follow_event(follower, followee, "unfollow"), at)

    async def handle_follow(
        self, event: FollowEvent, accepted_ts: int | None = None, *, in_order: bool = True, partition: int | None = None
    ) -> int:
        """Apply a follow or unfollow event; returns the entries copied (or removed).

        ``accepted_ts``: the event's clock, the Kafka record timestamp in the pipeline (default:
        the process clock). ``partition``: the partition of ``follows`` the record came from (None:
        not a record). ``in_order``: the record is keyed by its follower. A record of the partition
        that decided the edge comes after that decision and always wins; one of another partition
        counts only when it is later as a replay merges them (a newer clock, or the same
        millisecond and a greater partition: ``fanout.graph``); without a known
        partition, ``in_order`` says which. The event's ``time`` orders nothing; it is only
        checked against the clock (``event_time_us``).
        """
        clock = accepted_ts if accepted_ts is not None else now_micros()
        event_time_us(event, clock, self.settings)  # refuses times out of range (reason "time")
        following = event.op == "follow"
        return await self.graph.apply(event.follower, event.followee, following, clock, keyed=in_order,
                                      partition=partition)

    # reading ---------------------------------------------------------------------------
    async def read(
        self,
        user: str,
        *,
        kind: str = "timeline",
        limit: int = 25,
        before: str | None = None,
        after: str | None = None,
        touch: bool = False,
    ) -> list[Activity]:
        """A page of ``user``'s feed, newest first; ``before``/``after`` are activity ids. Pulled
        accounts' posts are merged in (``fanout.pullmerge``).

        A read writes nothing; ``touch=True`` also marks ``user`` active (``mark_active``)."""
        before_key = await self._cursor(before)
        after_key = await self._cursor(after)
        if touch:
            await self.mark_active(user)
        return await self.reader.read(kind, user, limit=limit, before=before_key, after=after_key)

    # aggregated and notification feeds (fanout.notifications) ---------------------------
    async def read_aggregated(
        self, user: str, *, kind: str = "aggregated", limit: int = 25, before: Key | None = None
    ) -> GroupPage:
        """A page of groups of an aggregated feed, newest first; ``before``: the ``next`` of the
        previous page. Writes nothing."""
        return page(await self.aggregated.groups(user, kind), limit, before)

    async def notifications(
        self, user: str, *, kind: str = "notification", limit: int = 25, before: Key | None = None
    ) -> NotificationPage:
        """A page of notification groups with ``seen``/``read``, and the feed's unseen/unread counts."""
        return await self.aggregated.notifications(user, kind, limit, before)

    async def notification_counts(self, user: str, *, kind: str = "notification") -> Counts:
        return await self.aggregated.counts(user, kind)

    async def mark_seen(self, user: str, groups: Iterable[str] | None = None, *, kind: str = "notification",
                        up_to: datetime | None = None) -> Counts:
        """Mark the groups (ids; None: all) seen up to their newest activity, or ``up_to`` (the newest
        time the user was shown: what landed since stays unseen); returns the counts."""
        return await self.aggregated.mark(user, kind, "seen", groups, up_to)

    async def mark_read(self, user: str, groups: Iterable[str] | None = None, *, kind: str = "notification",
                        up_to: datetime | None = None) -> Counts:
        """Mark the groups (ids; None: all) read, and so seen, as ``mark_seen`` marks them seen."""
        return await self.aggregated.mark(user, kind, "read", groups, up_to)

    async def _cursor(self, activity_id: str | None) -> Key | None:
        if activity_id is None:
            return None
        entry = await self.store.get_activity(activity_id)
        if entry is None or entry.activity is None:
            raise UnknownActivity(f"unknown activity id {activity_id!r} in cursor")
        return entry.activity.key

    async def delivery(self, activity_id: str) -> Delivery:
        """How far the fanout of ``activity_id`` (and of its removal) got (``fanout.tracing``)."""
        plans, landed = await self.store.delivery(activity_id)
        return delivery_report(activity_id, plans, landed)

    async def rebuild(self, user: str) -> int:
        """Rebuild ``user``'s timeline feeds from their followees' user feeds; returns the entries.

        The result is what re-applying each of the user's current follows gives: the newest
        ``follow_activity_limit`` activities of each followee, trimmed to the newest
        ``max_length``, also below earlier trims; every other entry is deleted. An unfollow still
        in flight wins over it (``fanout.graph``).
        """
        return await self.graph.rebuild(user)

    # activity of users -----------------------------------------------------------------
    async def mark_active(self, user: str, *, at: int | None = None) -> None:
        """Mark ``user`` active, a HIGH follower for ``active_window_days`` from ``at`` (default:
        now). Only this (``registering.mark_active_at``) and publishing (``Registrar.register``, each
        post of a run's time in turn) mark users active; ``read(touch=True)`` calls this. Cheap: it writes only when the
        mark is older than a 14th of the window (about twice a day)."""
        now = now_micros() if at is None else at
        await mark_active_at(self.store, user, [now], self._window)


def _activity_event(
    event: ActivityEvent | Mapping[str, Any] | None, fields: Mapping[str, Any], *, op: str
) -> ActivityEvent:
    if not isinstance(event, ActivityEvent) and "op" not in fields and "op" not in (event or {}):
        fields = {**fields, "op": op}
    return activity_event(event, **fields)


def _follow_event(follower: str, followee: str, op: str) -> FollowEvent:
    return follow_event(follower, followee, op)


def _check_remove(entry: RegistryEntry | None, activity_id: str, actor: str) -> None:
    if entry is not None and entry.activity is not None and entry.activity.actor != actor:
        raise InvalidEvent(
            f"activity {activity_id!r} belongs to actor {entry.activity.actor!r}, not {actor!r}", reason="conflict"
        )
