"""Valid workloads, produced as a user's services would: JSON per ``schemas/``, keyed per
agents/README.md, and what the model needs to know about each event.

``Social`` is the kill storm's social network: follows, unfollows and re-follows; activities with
and without ``id`` and ``time`` (zones other than UTC too), targets and ``extra``; removes by id and
by content (in another zone's spelling of the same instant), before their add, under another key,
twice; duplicates; and late follows of prolific authors (after all their posts) that copy just the
newest ``follow_limit`` activities.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from .kafka_io import Sent
from .model import Model, micros
from .scale import Scale

_ZONES = (UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8)), timezone(timedelta(hours=1)))
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
VERBS = ("pin", "post", "like", "share")


def rfc3339(us: int, rng: random.Random) -> str:
    """``us`` (microseconds since the epoch) spelled in a random zone, sometimes with ``Z``."""
    moment = (_EPOCH + timedelta(microseconds=us)).astimezone(rng.choice(_ZONES))
    text = moment.isoformat()
    return text.replace("+00:00", "Z") if rng.random() < 0.5 else text


@dataclass
class Planned:
    """An event to produce, and how the model reads it."""

    topic: str  # activities | follows
    key: str
    doc: dict[str, Any]
    stamp: bool = False  # doc["time"] := the record's timestamp (follow events ordered as produced)
    late: bool = False  # a follow made after every activity of the followee (the model copies the newest N)

    def value(self, ts_ms: int) -> bytes:
        doc = self.doc
        if self.stamp:
            doc = {**doc, "time": rfc3339(ts_ms * 1000, random.Random(ts_ms))}
        return json.dumps(doc, ensure_ascii=False).encode()


def record(model: Model, planned: Iterable[Planned], sent: Iterable[Sent]) -> None:
    """Feed what was produced (and acknowledged) to the model, in production order."""
    for plan, done in zip(planned, sent, strict=True):
        if done.refused:
            raise AssertionError(f"a valid event was refused by the broker: {done.refused}")
        doc = json.loads(done.value or b"null")
        model.apply(plan.topic, doc, done.ts_us)
        if plan.late:
            model.mark_late(doc["follower"], doc["followee"])


def activity(rng: random.Random, actor: str, n: int, now_us: int, *, flavour: str = "") -> dict[str, Any]:
    """An add: flavour ``id+time`` (default mix), ``id``, ``time`` or ``bare`` (neither id nor time)."""
    flavour = flavour or rng.choices(("id+time", "id", "time", "bare"), weights=(55, 15, 20, 10))[0]
    doc: dict[str, Any] = {"actor": actor, "verb": rng.choice(VERBS), "object": f"obj:{actor}:{n}"}
    if rng.random() < 0.5:
        doc["target"] = f"board:{rng.randrange(5)}"
    if rng.random() < 0.3:
        doc["extra"] = {"text": f"héllo ✓ {n}", "tags": ["a", "b"], "n": n, "nested": {"ok": True}}
    if "id" in flavour:
        doc["id"] = f"{actor}/a{n}"
    if "time" in flavour:
        doc["time"] = rfc3339(now_us - rng.randrange(600_000_000, 6 * 3600_000_000), rng)
    return doc


def removal(rng: random.Random, add: dict[str, Any]) -> dict[str, Any]:
    """The remove of ``add``: by id, or by its content and time (spelled in another zone)."""
    doc = {"actor": add["actor"], "verb": add["verb"], "object": add["object"], "op": "remove"}
    if "id" in add:
        doc["id"] = add["id"]
        return doc
    if add.get("target") is not None:
        doc["target"] = add["target"]
    doc["time"] = rfc3339(micros(add["time"]), rng)
    return doc


@dataclass
class Social:
    """The storm's network. ``phase1()`` then, once it drained, ``phase2()`` (late follows)."""

    rng: random.Random
    scale: Scale
    now_us: int
    users: list[str] = field(init=False)
    authors: list[str] = field(init=False)
    prolific: list[str] = field(init=False)
    followed: dict[str, list[tuple[float, str]]] = field(init=False, default_factory=dict)  # -> [(pos, follower)]

    def __post_init__(self) -> None:
        self.users = [f"u{i}" if i % 7 else f"ü{i}" for i in range(self.scale.users)]
        self.authors = self.users[: self.scale.authors]  # authors[0] is followed by everyone
        self.prolific = [f"star{i}" for i in range(self.scale.prolific_authors)]

    def phase1(self) -> list[Planned]:
        rng = self.rng
        timeline: list[tuple[float, Planned]] = []

        def at(position: float, plan: Planned) -> None:
            timeline.append((position, plan))

        limit = self.scale.follow_limit
        for follower in self.users:
            lo, hi = self.scale.follows_per_user
            followees = {self.authors[0], *rng.sample(self.authors, rng.randint(lo, min(hi, len(self.authors))))}
            for followee in sorted(followees - {follower}):
                self._edge(at, follower, followee)
        for actor in self.authors:
            lo, hi = self.scale.adds_per_author
            self._posts(at, actor, rng.randint(lo, min(hi, limit - 4)))
        for actor in self.prolific:
            self._posts(at, actor, limit + 20, flavour="id+time", remove_rate=0.1)
        timeline.sort(key=lambda item: item[0])
        return [plan for _, plan in timeline]

    def _posts(self, at: Any, actor: str, count: int, *, flavour: str = "", remove_rate: float = 0.15) -> None:
        rng = self.rng
        timeless_retries = 0
        for n in range(count):
            doc = activity(rng, actor, n, self.now_us, flavour=flavour)
            p = rng.random()
            at(p, Planned("activities", actor, doc))
            if rng.random() < 0.08 and (doc.get("id") or doc.get("time") or timeless_retries < 3):
                timeless_retries += not (doc.get("id") or doc.get("time"))  # a retry of those is a new activity
                at(p + rng.random() * (1 - p), Planned("activities", actor, doc))  # duplicate
            if (doc.get("id") or doc.get("time")) and rng.random() < remove_rate:
                self._remove(at, doc, p)
        if rng.random() < 0.5:  # the removal of an activity that never existed: silent
            at(rng.random(), Planned("activities", actor, {"actor": actor, "verb": "pin", "object": "none",
                                                           "op": "remove", "id": f"{actor}/never"}))

    def _remove(self, at: Any, add: dict[str, Any], p: float) -> None:
        """A remove of ``add`` (at position ``p``): later; before it; racing it (right after it, under
        another key: the same planner batch, another partition); or right after an unfollow of one
        of the author's followers, while the add's chunks are still on their way."""
        rng = self.rng
        actor = add["actor"]
        doc = removal(rng, add)
        shape = rng.choices(("later", "before", "racing", "doomed"), weights=(35, 20, 25, 20))[0]
        key = actor if shape in ("later", "doomed") or rng.random() < 0.5 else rng.choice(self.users)
        q = rng.random() * p if shape == "before" else p + rng.random() * (1 - p)
        earlier = [f for pos, f in self.followed.get(actor, []) if pos < p]
        if shape == "racing":
            key, q = rng.choice([u for u in self.users if u != actor]), p + 1e-9
        elif shape == "doomed" and earlier:
            follower = rng.choice(earlier)
            at(p + 1e-9, Planned("follows", follower, {"follower": follower, "followee": actor, "op": "unfollow"},
                                 stamp=True))
            q = p + 2e-9
        at(q, Planned("activities", key, doc))
        if rng.random() < 0.15:
            at(q + rng.random() * (1 - q), Planned("activities", key, doc))  # twice

    def _edge(self, at: Any, follower: str, followee: str) -> None:
        rng = self.rng

        def event(op: str) -> Planned:
            doc = {"follower": follower, "followee": followee, "op": op}
            return Planned("follows", follower, doc, stamp=rng.random() < 0.7)

        p = rng.random()
        at(p, event("follow"))
        self.followed.setdefault(followee, []).append((p, follower))
        if rng.random() < 0.05:
            at(p + rng.random() * (1 - p), event("follow"))  # a duplicate
        if rng.random() < 0.15:
            q = p + rng.random() * (1 - p)
            at(q, event("unfollow"))
            if rng.random() < 0.5:
                at(q + rng.random() * (1 - q), event("follow"))  # re-follow

    def phase2(self) -> list[Planned]:
        """Late follows: of each prolific author (the newest ``follow_limit`` are copied) and of
        regular authors whose posts are all done; a few more unfollows."""
        rng = self.rng
        out: list[Planned] = []
        for star in self.prolific:
            for follower in rng.sample(self.users, min(self.scale.late_followers, len(self.users))):
                doc = {"follower": follower, "followee": star, "op": "follow"}
                out.append(Planned("follows", follower, doc, stamp=True, late=True))
        for follower in rng.sample(self.users, len(self.users) // 3):
            followee = rng.choice(self.authors)
            if followee != follower:
                op = "follow" if rng.random() < 0.8 else "unfollow"
                out.append(Planned("follows", follower, {"follower": follower, "followee": followee, "op": op},
                                   stamp=True))
        rng.shuffle(out)
        return out


def celebrity_graph(rng: random.Random, followers: int, *, active: float = 0.3) -> list[Planned]:
    """``followers`` users follow ``celeb``; a share of them post once (active: the HIGH lane)."""
    users = [f"f{i}" for i in range(followers)]
    out = [Planned("follows", u, {"follower": u, "followee": "celeb", "op": "follow"}, stamp=True) for u in users]
    out += [Planned("activities", u, activity(rng, u, 0, int(time.time() * 1_000_000), flavour="id+time"))
            for u in users if rng.random() < active]
    return out


def celebrity_posts(rng: random.Random, count: int, *, first: int = 0, removes: float = 0.1) -> list[Planned]:
    """``count`` posts of ``celeb`` (ids ``celeb/a<n>``), some removed again right after (half of
    those under another key: the planner handles the pair concurrently)."""
    now = int(time.time() * 1_000_000)
    out: list[Planned] = []
    for n in range(first, first + count):
        doc = activity(rng, "celeb", n, now, flavour="id+time")
        out.append(Planned("activities", "celeb", doc))
        if rng.random() < removes:
            out.append(Planned("activities", rng.choice(("celeb", f"f{n}")), removal(rng, doc)))
    return out


def celebrity_unfollows(rng: random.Random, followers: int, share: float = 0.05) -> list[Planned]:
    """Some followers unfollow ``celeb`` while its posts' chunks are still on their way (their
    timelines must end with none of them, removed or not)."""
    users = [f"f{i}" for i in range(followers) if rng.random() < share]
    return [Planned("follows", u, {"follower": u, "followee": "celeb", "op": "unfollow"}, stamp=True) for u in users]
