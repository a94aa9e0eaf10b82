"""What a replay is asked to do: ``ReplayOptions``, checked and resolved into a ``ReplayPlan``.

``users=`` rebuilds only those users' timelines: a ``UserFilterSink`` drops every other feed
from the chunks, and only their follow events are applied (the follow graph of everyone else is
read from the store as it is). The authors' own user feeds are rewritten too (idempotently): they
are the source of follow copies. ``kind=`` fans into that feed kind only
(``settings.feed_kinds = (kind,)``), e.g. to build a new kind from history.

The plan names the replay by a fingerprint of what it writes (``users``, ``kind``,
``end_offsets``), not of where it starts: a resumed replay starts at its commits, whatever
``since``/``start_offsets`` say (see ``replay_progress`` for the commit metadata).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from fanout.errors import ConfigError
from fanout.settings import Settings

from . import group_id

__all__ = ["ROLE", "SOURCES", "Offsets", "ReplayOptions", "ReplayPlan", "offsets_for", "plan_replay"]

#: ``{"activities": 120}`` (every partition) or ``{"follows": {0: 10, 2: 40}}`` (per partition).
Offsets = Mapping[str, int | Mapping[int, int]]

SOURCES: Final = ("follows", "activities")  # merge tie-break on equal timestamps: follows first
ROLE: Final = "replay"  # the consumer group's suffix and the label of store retries


@dataclass(frozen=True, slots=True)
class ReplayOptions:
    """What to replay and how; every field is optional (the default is a full replay).

    ``since``: a timezone-aware datetime or epoch milliseconds (per partition, from the first
    record at or after it). ``start_offsets``/``end_offsets``: ``{"activities": 120}`` or
    ``{"follows": {0: 10}}``; the end is exclusive and turns catching up off. ``users``: rebuild
    only these users' timelines. ``kind``: fan into this feed kind only. ``reset``: ignore (and
    overwrite) the group's progress. ``drop_timelines``: truncate the timeline table first (a full
    replay only, not on resume). ``via_kafka``: publish the chunks to ``high``/``low`` for the
    writer agents instead of writing them. ``group``: the consumer group (default
    ``<prefix>replay``). ``catch_up``: after the log end seen at the start, also replay what
    arrived meanwhile.
    """

    since: datetime | int | None = None
    start_offsets: Offsets | None = None
    end_offsets: Offsets | None = None
    users: Collection[str] | None = None
    kind: str | None = None
    reset: bool = False
    drop_timelines: bool = False
    via_kafka: bool = False
    group: str | None = None
    catch_up: bool = True


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    """The options checked against the settings, with what the replay derives from them."""

    options: ReplayOptions
    settings: Settings  # ``feed_kinds=(kind,)`` when a kind is given
    group: str
    users: frozenset[str] | None
    since_ms: int | None
    catch_up: bool  # off with explicit end offsets
    target: str  # fingerprint of what the replay writes
    description: str  # for people: the options that differ from a full replay


def plan_replay(settings: Settings, options: ReplayOptions) -> ReplayPlan:
    """Check ``options`` (``ConfigError`` says what is wrong) and resolve them."""
    users = frozenset(u for u in options.users if u) if options.users is not None else None
    if users is not None and not users:
        raise ConfigError("users: give at least one user")
    kind = options.kind
    if kind is not None:
        if not kind or ":" in kind:
            raise ConfigError(f"kind {kind!r} is not a feed kind")
        if kind == settings.user_feed_kind:
            raise ConfigError(f"kind {kind!r}: user feeds are always rewritten (they are the source)")
        settings = settings.replace(feed_kinds=(kind,))
    if options.drop_timelines and (users is not None or options.since is not None or options.start_offsets):
        raise ConfigError("drop_timelines needs a full replay (no users, since or start offsets)")
    since_ms = _since_ms(options.since)
    spec = {
        "since": since_ms,
        "start": _plain(options.start_offsets),
        "end": _plain(options.end_offsets),
        "users": _fingerprint({"u": sorted(users)}) if users is not None else None,
        "kind": kind,
    }
    return ReplayPlan(
        options=options,
        settings=settings,
        group=options.group or group_id(settings.topic_prefix, ROLE),
        users=users,
        since_ms=since_ms,
        catch_up=options.catch_up and not options.end_offsets,
        target=_fingerprint({k: spec[k] for k in ("end", "users", "kind")}),
        description=_describe(spec),
    )


def offsets_for(spec: Offsets | None, short: str, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    """The offsets ``spec`` gives the partitions of topic ``short`` (full name ``topic``)."""
    if not spec:
        return {}
    unknown = set(spec) - set(SOURCES)
    if unknown:
        raise ConfigError(f"offsets name unknown topic(s) {sorted(unknown)}: use 'activities' or 'follows'")
    value = spec.get(short)
    if value is None:
        return {}
    if isinstance(value, int):
        return dict.fromkeys(partitions, value)
    valid = set(partitions)
    bad = sorted(p for p in value if p not in valid)
    if bad:
        raise ConfigError(f"topic {topic} has no partition(s) {bad}")
    return dict(value)


def _plain(offsets: Offsets | None) -> dict[str, Any]:
    return {k: v if isinstance(v, int) else dict(v) for k, v in (offsets or {}).items()}


def _since_ms(since: datetime | int | None) -> int | None:
    if since is None or isinstance(since, int):
        return since
    if since.tzinfo is None:
        raise ConfigError("since: give a timezone-aware datetime")
    return int(since.timestamp() * 1000)


def _fingerprint(spec: Mapping[str, Any]) -> str:
    text = json.dumps(spec, sort_keys=True, default=str)
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


def _describe(spec: Mapping[str, Any]) -> str:
    parts = [f"{k}={v}" for k, v in sorted(spec.items()) if v not in (None, {}, [])]
    return (", ".join(parts) or "full replay")[:300]
