"""``fanout replay`` and ``fanout rebuild``: rebuilding timelines from the topics or the followees' feeds.

    fanout replay [--since WHEN | --from OFFSETS] [--to OFFSETS] [--users A,B] [--kind K] [--reset] ...
    fanout rebuild USER [USER ...] [--kind K]

See ``fanout.agents.replay`` (and the ``replay_*`` modules beside it) for what a replay does and
agents/REPLAY.md for operating it.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import signal
from datetime import UTC, datetime, timedelta
from typing import Any

from rich.console import Console

from fanout.agents.rebuild import rebuild_users
from fanout.agents.replay import SOURCES, ReplayOptions, ReplaySummary, replay
from fanout.agents.signals import stop_on_signals
from fanout.errors import ConfigError
from fanout.settings import Settings

from .arguments import identifier, identifiers

_DURATION = re.compile(r"(\d+(?:\.\d+)?)([smhdw])")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}


def parse_since(text: str, *, now: datetime | None = None) -> int:
    """``2024-05-01T00:00:00Z``, ``2024-05-01`` (UTC), ``90m``/``12h``/``7d`` ago, or epoch ms."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    match = _DURATION.fullmatch(text)
    if match:
        ago = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
        return int(((now or datetime.now(UTC)) - ago).timestamp() * 1000)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"--since {text!r}: give an RFC 3339 time, a duration like 12h or 7d, or epoch ms") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


def parse_offsets(text: str) -> dict[str, int | dict[int, int]]:
    """``activities=100`` (every partition) and/or ``activities:0=100,follows:2=7``."""
    out: dict[str, int | dict[int, int]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        where, sep, value = part.partition("=")
        topic, colon, partition = where.partition(":")
        if not sep or topic not in SOURCES or not value.strip().isdigit() or (colon and not partition.isdigit()):
            raise ConfigError(f"offset {part!r}: use activities[:PARTITION]=OFFSET or follows[:PARTITION]=OFFSET")
        current = out.get(topic)
        if colon:
            if isinstance(current, int):
                raise ConfigError(f"offset {part!r}: {topic} already has one offset for every partition")
            per = current if isinstance(current, dict) else {}
            per[int(partition)] = int(value)
            out[topic] = per
        else:
            if current is not None:
                raise ConfigError(f"offset {part!r}: {topic} is given twice")
            out[topic] = int(value)
    return out


def register(subparsers: Any) -> None:
    """Add ``replay`` and ``rebuild`` to the ``fanout`` command's subparsers."""
    p = subparsers.add_parser(
        "replay",
        help="re-read activities and follows and rebuild timelines (resumable)",
        description="Re-read the activities and follows topics in timestamp order, in a consumer group of "
        "its own, and rebuild timelines with the planner and writer code. Ctrl+C stops after the batch "
        "in progress; the same command resumes; --reset starts over.",
    )
    where = p.add_mutually_exclusive_group()
    where.add_argument("--since", metavar="WHEN", help="RFC 3339 time, duration ago (12h, 7d) or epoch ms")
    where.add_argument("--from", dest="start", metavar="OFFSETS",
                       help="start offsets: activities=100 or activities:0=100,follows:1=7")
    p.add_argument("--to", dest="end", metavar="OFFSETS", help="end offsets (exclusive), same form as --from")
    p.add_argument("--users", metavar="A,B,C", type=identifiers, help="rebuild only these users' timelines")
    p.add_argument("--kind", help="fan into this feed kind only (e.g. a new kind)")
    p.add_argument("--reset", action="store_true", help="start over instead of resuming the group's progress")
    p.add_argument("--drop-timelines", action="store_true",
                   help="truncate the timeline table first (full replays only; not on resume)")
    p.add_argument("--via-kafka", action="store_true",
                   help="publish chunks to the high/low topics for the writer agents")
    p.add_argument("--group", help="consumer group (default <prefix>replay)")
    p.add_argument("--no-catch-up", dest="catch_up", action="store_false",
                   help="stop at the log end seen at the start")
    p.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=_replay_command)

    r = subparsers.add_parser(
        "rebuild", help="rebuild users' timelines from their followees' user feeds",
        description="Rebuild each USER's timeline from the user feeds of the accounts they follow "
        "(the same entries a full replay gives them, up to the follow-copy limit and max length).",
    )
    r.add_argument("users", nargs="+", metavar="USER", type=identifier)
    r.add_argument("--kind", help="rebuild this feed kind (default: every fanned kind)")
    r.set_defaults(func=_rebuild_command)


def _fanned_kind(kind: str | None, settings: Settings) -> str | None:
    """``--kind``: one of the kinds the agents fan into (a new kind is added to FANOUT_FEED_KINDS first)."""
    if kind is not None and kind not in settings.feed_kinds:
        raise ConfigError(f"--kind {kind!r} is not a fanned feed kind: one of {', '.join(settings.feed_kinds)} "
                          "(FANOUT_FEED_KINDS; add a new kind there first, so that reads serve it too)")
    return kind


def _replay_command(args: argparse.Namespace, settings: Settings) -> int:
    console = Console(stderr=True)
    options = ReplayOptions(
        since=parse_since(args.since) if args.since else None,
        start_offsets=parse_offsets(args.start) if args.start else None,
        end_offsets=parse_offsets(args.end) if args.end else None,
        users=args.users,
        kind=_fanned_kind(args.kind, settings),
        reset=args.reset,
        drop_timelines=args.drop_timelines,
        via_kafka=args.via_kafka,
        group=args.group,
        catch_up=args.catch_up,
    )

    async def main() -> ReplaySummary:
        stop = asyncio.Event()
        with stop_on_signals(stop, task=asyncio.current_task(), signals=(signal.SIGINT,),
                             announce=console.print):
            return await replay(settings, options, stop=stop, progress=args.progress, console=console)

    try:
        summary = asyncio.run(main())
    except asyncio.CancelledError:  # a second Ctrl+C
        console.print("abandoned the batch in progress (not committed): run the same command to resume")
        return 130
    console.print(summary.table())
    if summary.interrupted:
        console.print("interrupted: run the same command to resume, or add --reset to start over")
        return 130
    return 0


def _rebuild_command(args: argparse.Namespace, settings: Settings) -> int:
    copied = asyncio.run(rebuild_users(settings, args.users, kind=_fanned_kind(args.kind, settings)))
    for user, n in copied.items():
        print(f"rebuilt {user}: {n} entries from the followees' user feeds")
    return 0
