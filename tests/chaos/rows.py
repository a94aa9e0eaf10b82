"""Raw timeline rows read back with cassandra-driver, and their comparison with the model.

Every row of the keyspace's ``timeline`` table is read (one prepared full scan, paged), so rows in
feeds the model does not know count as extra too. The comparison names each difference:

* ``lost``  an expected (feed, activity) with no row;
* ``extra`` a row the model does not expect (a removed activity, an unfollowed author, a forged row);
* ``dup``   more than one row of one activity in one feed (e.g. the same event with two times);
* ``wrong`` the row exists but its columns differ from the event (time, actor, verb, object, target, extra).
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from .model import Entry, Identity, Model

CASSANDRA_HOST = "127.0.0.1"
FETCH_SIZE = 5000


class Row(NamedTuple):
    feed: str
    ts: int
    activity_id: str
    actor: str
    verb: str
    object: str
    target: str | None
    extra: str | None


def _read_all(keyspace: str) -> list[Row]:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import DCAwareRoundRobinPolicy
    from cassandra.query import tuple_factory

    profile = ExecutionProfile(
        load_balancing_policy=DCAwareRoundRobinPolicy(local_dc="datacenter1"),
        request_timeout=60,
        row_factory=tuple_factory,
    )
    cluster = Cluster([CASSANDRA_HOST], execution_profiles={EXEC_PROFILE_DEFAULT: profile}, connect_timeout=20)
    try:
        session = cluster.connect()
        statement = session.prepare(
            f"SELECT feed, ts, activity_id, actor, verb, object, target, extra FROM {keyspace}.timeline"
        )
        statement.fetch_size = FETCH_SIZE
        return [Row(*row) for row in session.execute(statement)]
    finally:
        cluster.shutdown()


async def read_rows(keyspace: str) -> list[Row]:
    """Every timeline row of ``keyspace`` (retried while the node is coming back)."""
    last: Exception | None = None
    for _ in range(10):
        try:
            return await asyncio.to_thread(_read_all, keyspace)
        except Exception as exc:  # the driver raises many kinds while a node restarts
            last = exc
            await asyncio.sleep(3)
    raise AssertionError(f"could not read {keyspace}.timeline: {last!r}")


def row_identity(row: Row, explicit_ids: set[str]) -> Identity:
    if row.activity_id in explicit_ids:
        return ("id", row.activity_id)
    return ("content", row.actor, row.verb, row.object, row.target, row.ts)


@dataclass
class Comparison:
    rows: int = 0
    expected: int = 0
    feeds: int = 0
    lost: int = 0
    extra: int = 0
    dup: int = 0
    wrong: int = 0
    why_extra: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    @property
    def exact(self) -> bool:
        return self.lost == self.extra == self.dup == self.wrong == 0

    def note(self, text: str) -> None:
        if len(self.examples) < 12:
            self.examples.append(text)

    def line(self) -> str:
        why = ",".join(f"{k}:{v}" for k, v in sorted(self.why_extra.items()))
        return (f"rows={self.rows} expected={self.expected} feeds={self.feeds} lost={self.lost} "
                f"extra={self.extra}{f'({why})' if why else ''} dup={self.dup} wrong={self.wrong}")

    def report(self) -> str:
        return self.line() + "".join(f"\n  {e}" for e in self.examples)


def _mismatch(row: Row, entry: Entry) -> str:
    extra = None if row.extra is None else json.loads(row.extra)
    wanted: dict[str, Any] = {"actor": entry.actor, "verb": entry.verb, "object": entry.object, "target": entry.target,
              "extra": None if entry.extra is None else dict(entry.extra)}
    got: dict[str, Any] = {"actor": row.actor, "verb": row.verb, "object": row.object, "target": row.target,
                           "extra": extra}
    if not entry.loose_ts:
        wanted["ts"], got["ts"] = entry.ts, row.ts
    return ", ".join(f"{k}={got[k]!r} (expected {wanted[k]!r})" for k in wanted if got[k] != wanted[k])


def _why_extra(model: Model, feed: str, identity: Identity, row: Row) -> str:
    if identity in model.removed:
        return "removed"
    if identity not in model.activities:
        return "unknown"
    if feed.startswith(f"{model.user_kind}:"):
        return "user-feed"
    follower = feed.split(":", 1)[1]
    if (follower, row.actor) in model.edges:
        return "unfollowed" if not model.edges[(follower, row.actor)] else "over-limit"
    return "never-followed"


def compare(rows: Iterable[Row], expected: Mapping[str, list[Entry]], model: Model) -> Comparison:
    """Every row against every expected entry of every feed."""
    result = Comparison()
    by_feed: dict[str, list[Row]] = {}
    for row in rows:
        by_feed.setdefault(row.feed, []).append(row)
        result.rows += 1
    result.expected = sum(len(v) for v in expected.values())
    result.feeds = len(set(by_feed) | set(expected))
    for feed in sorted(set(by_feed) | set(expected)):
        wanted = {e.identity: e for e in expected.get(feed, [])}
        seen: Counter[Identity] = Counter()
        for row in by_feed.get(feed, []):
            identity = row_identity(row, model.explicit_ids)
            seen[identity] += 1
            entry = wanted.get(identity)
            if entry is None:
                result.extra += 1
                why = _why_extra(model, feed, identity, row)
                result.why_extra[why] += 1
                result.note(f"extra ({why}) in {feed}: {row.activity_id} by {row.actor} {row.verb} {row.object}")
                continue
            if seen[identity] > 1:
                result.dup += 1
                result.note(f"dup in {feed}: {row.activity_id} (ts {row.ts})")
                continue
            problem = _mismatch(row, entry)
            if problem:
                result.wrong += 1
                result.note(f"wrong in {feed}: {row.activity_id}: {problem}")
        for identity, entry in wanted.items():
            if identity not in seen:
                result.lost += 1
                result.note(f"lost in {feed}: {identity[1:]} by {entry.actor}")
    return result


def summarize(rows: list[Row], model: Model) -> Comparison:
    return compare(rows, model.expected(), model)
