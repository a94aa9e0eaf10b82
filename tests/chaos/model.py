"""The chaos suite's reference model: which rows every feed must hold, given the events produced.

Written from the contract (README.md, agents/README.md, schemas/), not from fanout's code, so a
bug in the product cannot hide in the expectation. What it models:

* An activity's identity is its ``id`` when the producer gave one, else its content: actor, verb,
  object, target and time (the record's Kafka timestamp when the event has no ``time``). The same
  identity produced twice lands once.
* A remove names the activity by ``id`` or by the add's content and ``time``; it wins whatever the
  order, partition or process in which the add and the remove are handled.
* The author's user feed (``user:<actor>``) holds every activity of the author that was not removed.
* A follower's timeline holds the activities of the users they follow at the end (the last
  follow/unfollow event of each pair in the follower's partition decides), but for a followee that
  was followed only after all its activities (a *late* follow) just the newest
  ``follow_activity_limit`` of them, as the follow copies at most that many. Other followees keep
  their activity count at or below the limit, so a follow racing their posts is unambiguous.
* ``max_length`` is kept above any feed's size: trimming never makes the expectation ambiguous.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

Identity = tuple[Hashable, ...]
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def micros(text: str) -> int:
    """An RFC 3339 time with a zone -> microseconds since the epoch (UTC)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


@dataclass(frozen=True, slots=True)
class Entry:
    """One expected timeline row."""

    identity: Identity
    ts: int
    actor: str
    verb: str
    object: str
    target: str | None
    extra: Mapping[str, Any] | None
    loose_ts: bool = False  # the contract lets the product clamp this activity's time

    @property
    def order(self) -> tuple[int, str]:
        return (self.ts, str(self.identity[-1]) if self.identity[0] == "id" else "")


def identity_of(doc: Mapping[str, Any], record_ts_us: int) -> Identity:
    """How the model names the activity an add (or remove) event describes."""
    if doc.get("id") is not None:
        return ("id", doc["id"])
    ts = micros(doc["time"]) if doc.get("time") is not None else record_ts_us
    return ("content", doc["actor"], doc["verb"], doc["object"], doc.get("target"), ts)


@dataclass
class Model:
    """Feed the produced events in production order with ``apply``; read ``expected()``."""

    follow_activity_limit: int
    user_kind: str = "user"
    timeline_kinds: tuple[str, ...] = ("timeline",)
    activities: dict[Identity, Entry] = field(default_factory=dict)
    removed: set[Identity] = field(default_factory=set)
    explicit_ids: set[str] = field(default_factory=set)
    edges: dict[tuple[str, str], bool] = field(default_factory=dict)  # (follower, followee) -> following
    late: set[tuple[str, str]] = field(default_factory=set)  # edges made after every post of the followee

    def apply(self, topic: str, doc: Mapping[str, Any], record_ts_us: int, *, loose_ts: bool = False) -> None:
        """One accepted event, as the pipeline received it (``record_ts_us``: the record's timestamp)."""
        if topic == "follows":
            following = doc.get("op", "follow") == "follow"
            self.edges[(doc["follower"], doc["followee"])] = following
            return
        identity = identity_of(doc, record_ts_us)
        if doc.get("op", "add") == "remove":
            self.removed.add(identity)
            return
        if identity in self.activities:
            return  # a duplicate (or a retry): a known activity keeps its first version
        if doc.get("id") is not None:
            self.explicit_ids.add(doc["id"])
        ts = micros(doc["time"]) if doc.get("time") is not None else record_ts_us
        self.activities[identity] = Entry(
            identity, ts, doc["actor"], doc["verb"], doc["object"], doc.get("target"), doc.get("extra"), loose_ts
        )

    def mark_late(self, follower: str, followee: str) -> None:
        """``follower`` followed ``followee`` after every activity of ``followee`` was planned."""
        self.late.add((follower, followee))

    def live_by_actor(self) -> dict[str, list[Entry]]:
        """Every actor's activities that were not removed, newest first."""
        out: dict[str, list[Entry]] = {}
        for identity, entry in self.activities.items():
            if identity not in self.removed:
                out.setdefault(entry.actor, []).append(entry)
        for entries in out.values():
            entries.sort(key=lambda e: e.order, reverse=True)
        return out

    def expected(self) -> dict[str, list[Entry]]:
        """feed id -> expected entries, newest first (feeds expected empty are left out)."""
        live = self.live_by_actor()
        feeds: dict[str, list[Entry]] = {}
        for actor, entries in live.items():
            feeds[f"{self.user_kind}:{actor}"] = list(entries)
        timelines: dict[str, dict[Identity, Entry]] = {}
        for (follower, followee), following in self.edges.items():
            if not following:
                continue
            entries = live.get(followee, [])
            if (follower, followee) in self.late:
                entries = entries[: self.follow_activity_limit]
            for kind in self.timeline_kinds:
                timelines.setdefault(f"{kind}:{follower}", {}).update((e.identity, e) for e in entries)
        for feed, by_identity in timelines.items():
            if by_identity:
                feeds[feed] = sorted(by_identity.values(), key=lambda e: e.order, reverse=True)
        return feeds

    def followers_of(self, followee: str) -> list[str]:
        return sorted(f for (f, e), on in self.edges.items() if on and e == followee)


def count_rows(feeds: Mapping[str, Iterable[Entry]]) -> int:
    return sum(len(list(entries)) for entries in feeds.values())
