"""The replay applies records exactly as the live agents do (no server)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from types import SimpleNamespace

from fanout import Fanout, MemoryStore, Settings
from fanout.activity import now_micros
from fanout.agents.replay_apply import BatchApplier
from fanout.agents.replay_progress import ReplaySummary
from fanout.agents.replay_sinks import BufferedWriterSink
from fanout.codec import ActivityEvent, FollowEvent, validate_activity_event


async def test_a_record_without_a_timestamp_gets_the_clock_not_a_negative_time() -> None:
    """Kafka reports a missing timestamp as -1: the planner and the follows agent then use their clock;
    the replay must too (it used to turn -1 into a time before 1970)."""
    settings = Settings()
    store = MemoryStore()
    fanout = Fanout(store, settings)
    summary = ReplaySummary(group="g")
    sink = BufferedWriterSink(fanout.writer, summary)
    fanout.sink = sink
    applier = BatchApplier(settings, fanout, sink, summary, None)
    event = {"actor": "ann", "verb": "pin", "object": "o1"}
    record = SimpleNamespace(topic=settings.topic("activities"), partition=0, offset=0, timestamp=-1,
                             key=b"ann", value=json.dumps(event).encode(), headers=[])
    before = now_micros()
    await applier.process([record])
    (activity,) = await fanout.read("ann", kind="user")
    assert activity.ts >= before


async def test_a_followers_run_of_follows_ends_as_one_by_one_and_an_invalid_one_is_skipped_alone() -> None:
    """A follower's consecutive follows are applied as a run (``follows.follow_runs``); a run holding
    an event with a time out of range falls back to one by one, so only that event is skipped."""
    settings = Settings(follows_partitions=1)
    t0 = now_micros() // 1000 - 60_000
    too_old = "1990-01-01T00:00:00Z"
    events = [("me", "a1", "follow", None), ("me", "a2", "follow", None), ("me", "a3", "follow", too_old),
              ("me", "a1", "unfollow", None), ("you", "a1", "follow", None), ("you", "a2", "follow", None),
              ("me", "a4", "follow", None), ("me", "a1", "follow", None)]
    records = []
    for n, (follower, followee, op, time) in enumerate(events):
        body = {"follower": follower, "followee": followee, "op": op} | ({"time": time} if time else {})
        records.append(SimpleNamespace(topic=settings.topic("follows"), partition=0, offset=n, timestamp=t0 + n,
                                       key=follower.encode(), value=json.dumps(body).encode(), headers=[]))

    async def seeded() -> Fanout:
        fanout = Fanout(MemoryStore(), settings)
        for author in ("a1", "a2", "a3", "a4"):
            await fanout.handle_activity(validate_activity_event(
                ActivityEvent(actor=author, verb="pin", object=f"{author}:o")), accepted_ts=(t0 - 1000) * 1000)
        return fanout

    replayed, reference = await seeded(), await seeded()
    summary = ReplaySummary(group="g")
    sink = BufferedWriterSink(replayed.writer, summary)
    replayed.sink = sink
    runs: list[list[str]] = []
    apply_follows = replayed.graph.apply_follows

    async def counted(follower: str, follows: Sequence[tuple[str, int, bool]], partition: int | None = None
                      ) -> list[int]:
        runs.append([followee for followee, _, _ in follows])
        return await apply_follows(follower, follows, partition)

    replayed.graph.apply_follows = counted  # type: ignore[method-assign]
    await BatchApplier(settings, replayed, sink, summary, None).process(records)
    for n, (follower, followee, op, time) in enumerate(events):
        if time is None:
            event = FollowEvent(follower=follower, followee=followee, op="follow" if op == "follow" else "unfollow")
            await reference.handle_follow(event, accepted_ts=(t0 + n) * 1000, partition=0)
    assert (summary.follows, summary.invalid, summary.invalid_reasons) == (7, 1, {"time": 1})
    for user in ("me", "you"):
        assert await replayed.store.follow_edges(user) == await reference.store.follow_edges(user)
        assert [a.id for a in await replayed.read(user)] == [a.id for a in await reference.read(user)]
    assert sorted(a.actor for a in await replayed.read("me")) == ["a1", "a2", "a4"]  # a3's follow skipped
    # me's first run (a1, a2, a3) was refused before any write and applied one by one; then you's, me's last
    assert sorted(runs) == [["a1", "a2"], ["a4", "a1"]]
