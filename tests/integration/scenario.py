"""The end-to-end scenario: the Kafka pipeline computes the same feeds as the eager mode (issue #4).

Real broker(s), real Cassandra node(s), the agents as real processes (``python -m fanout worker
all``); events produced as plain JSON by a bare aiokafka producer, as another service would.
``feeds_equal_eager_mode(settings)`` runs it on the stack the settings name: the one-node stack
(``tests/integration/test_pipeline.py``) or the three-node cluster (``tests/cluster/``).
"""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

from fanout.activity import now_micros
from fanout.agents import group_id
from fanout.codec import decode_activity_event, decode_follow_event
from fanout.core import Fanout
from fanout.memory import MemoryStore
from fanout.settings import Settings
from fanout.store import Store
from tests.integration.pipeline_helpers import (
    WorkerProcess,
    lags,
    pipeline,
    produce_raw,
    snapshot,
    wait_drained,
)

T0 = datetime(2024, 1, 1, tzinfo=UTC)
ACTORS = [f"a{i}" for i in range(5)]
FOLLOWERS = [f"u{i:02d}" for i in range(40)]
HIGH_USERS = [*FOLLOWERS[:15], "a1"]


def _at(seconds: int) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat()


class Script:
    """A deterministic social network, as phases of (topic, key, event) records."""

    def __init__(self, seed: int = 4) -> None:
        self.rng = random.Random(seed)
        self.edges: set[tuple[str, str]] = set()
        self.added: list[dict[str, Any]] = []
        self.n = 0

    def follow(self, follower: str, followee: str, t: int, op: str = "follow") -> tuple[str, str, dict[str, Any]]:
        (self.edges.add if op == "follow" else self.edges.discard)((follower, followee))
        return "follows", follower, {"follower": follower, "followee": followee, "op": op, "time": _at(t)}

    def activity(self, t: int) -> tuple[str, str, dict[str, Any]]:
        rng = self.rng
        self.n += 1
        event: dict[str, Any] = {
            "actor": rng.choice(ACTORS),
            "verb": rng.choice(["pin", "like", "share"]),
            "object": f"o{self.n}",
            "time": _at(t),
        }
        if rng.random() < 0.3:
            event["target"] = f"board:{rng.randrange(5)}"
        if rng.random() < 0.5:
            event["id"] = f"act-{self.n}"
        if rng.random() < 0.2:
            event["extra"] = {"n": self.n, "tags": ["x", "y"]}
        self.added.append(event)
        return "activities", event["actor"], event

    def remove(self, t: int) -> tuple[str, str, dict[str, Any]]:
        victim = self.added.pop(self.rng.randrange(len(self.added)))
        if "id" in victim:
            event = {"actor": victim["actor"], "verb": "remove", "object": victim["id"], "id": victim["id"],
                     "op": "remove", "time": _at(t)}
        else:  # by content: the same fields and time derive the same id
            event = {k: victim[k] for k in ("actor", "verb", "object", "time", "target") if k in victim}
            event["op"] = "remove"
        return "activities", victim["actor"], event

    def phase1(self) -> list[tuple[str, str, dict[str, Any]]]:
        rng = self.rng
        out = []
        t = 0
        for user in FOLLOWERS:
            for actor in rng.sample(ACTORS, rng.randint(1, 4)):
                t += 1
                out.append(self.follow(user, actor, t))
        out += [self.follow("a1", "a0", t + 1), self.follow("a2", "a0", t + 2), self.follow("a0", "a3", t + 3)]
        t = 1000
        for i in range(260):
            t += 1
            out.append(self.remove(t) if i > 40 and i % 12 == 0 else self.activity(t))
        return out

    def phase2(self) -> list[tuple[str, str, dict[str, Any]]]:
        rng = self.rng
        t = 5000
        out = []
        gone = rng.sample(sorted(self.edges), 15)
        for follower, followee in gone:
            t += 1
            out.append(self.follow(follower, followee, t, "unfollow"))
        for follower, followee in gone[:3]:  # re-follow: copies back at a later time
            t += 1
            out.append(self.follow(follower, followee, t))
        for _ in range(8):
            follower, followee = rng.choice(FOLLOWERS), rng.choice(ACTORS)
            t += 1
            out.append(self.follow(follower, followee, t))
        return out

    def phase3(self) -> list[tuple[str, str, dict[str, Any]]]:
        t = 9000
        out = []
        for i in range(70):
            t += 1
            out.append(self.remove(t) if i % 6 == 5 else self.activity(t))
        out.append(("activities", "a4", {"actor": "a4", "verb": "remove", "object": "never", "id": "never-seen",
                                         "op": "remove", "time": _at(t + 1)}))
        return out


async def mark_active(store: Store, settings: Settings) -> None:
    now = now_micros()
    until = now + int(settings.active_window_days * 86_400 * 1_000_000)
    for user in HIGH_USERS:
        await store.set_active(user, until, now)


async def eager(settings: Settings, phases: list[list[tuple[str, str, dict[str, Any]]]]) -> MemoryStore:
    memory = MemoryStore()
    await mark_active(memory, settings)
    fanout = Fanout(memory, settings.replace(store="memory"))
    for phase in phases:
        for topic, _key, event in phase:
            raw = json.dumps(event).encode()
            if topic == "follows":
                await fanout.handle_follow(decode_follow_event(raw))
            else:
                await fanout.handle_activity(decode_activity_event(raw))
    return memory


def records(phase: list[tuple[str, str, dict[str, Any]]], topic: str) -> list[tuple[bytes, bytes]]:
    return [(key.encode(), json.dumps(event).encode()) for t, key, event in phase if t == topic]


async def feeds_equal_eager_mode(settings: Settings, *, drain_within: float = 90.0) -> None:
    """Play the three phases of ``Script`` through the pipeline and assert every feed equals the eager
    mode's; each phase must drain within ``drain_within`` seconds."""
    script = Script()
    phases = [script.phase1(), script.phase2(), script.phase3()]
    expected_store = await eager(settings, phases)

    async with pipeline(settings) as store:
        await mark_active(store, settings)
        # `fanout worker all`: planner, 2 high writers, 1 low writer, follows as subprocesses
        workers = [WorkerProcess(settings, "all", "--high-writers", "2")]
        try:
            for i, phase in enumerate(phases):
                # Follows and activities of a phase race each other on purpose; unfollows wait for
                # the previous activities to land (an unfollow removes what the feed holds).
                await produce_raw(settings, "follows", records(phase, "follows"))
                await produce_raw(settings, "activities", records(phase, "activities"))
                try:
                    await wait_drained(settings, within=drain_within)
                except AssertionError:
                    logs = "\n".join(f"--- {w.name}\n{w.log()[-2000:]}" for w in workers)
                    raise AssertionError(f"phase {i + 1} did not drain\n{logs}") from None
            state = await lags(settings)
        finally:
            codes = [await w.terminate() for w in workers]
        assert codes == [0] * len(workers), [w.log()[-2000:] for w in workers]

        # both priorities carried chunks
        assert state[group_id(settings.topic_prefix, "writer", "high")][0] > 0
        assert state[group_id(settings.topic_prefix, "writer", "low")][0] > 0

        feeds = [f"timeline:{u}" for u in FOLLOWERS + ACTORS] + [f"user:{a}" for a in ACTORS]
        want = await snapshot(expected_store, feeds)
        got = await snapshot(store, feeds)
        assert sum(len(v) for v in want.values()) > 1000  # a real workload, not empty feeds
        for feed in feeds:
            assert got[feed] == want[feed], feed
        assert await store.feed_ids() == await expected_store.feed_ids()
