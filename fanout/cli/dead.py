"""``fanout dead``: list the dead letters with their reasons, and re-drive them once fixed.

    fanout dead [--reason R]... [--agent A]... [--since T] [--until T] [--json] [--limit N]
    fanout dead --redrive [same filters] [--dry-run]

T is RFC 3339 (``2026-05-01T12:00:00Z``) or a duration ago (``30m``, ``2h``, ``7d``); the filters
compare the time a record was dead-lettered. ``--redrive`` sends each matching dead letter not
yet re-driven to its source topic, with its key and record timestamp, and prints the counts
(see ``fanout.agents.dead``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

from fanout.agents import PRIORITIES
from fanout.errors import ConfigError
from fanout.settings import Settings

from .arguments import positive

_AGO = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
_AGENTS = ("planner", "follows", *(f"writer-{priority}" for priority in PRIORITIES))  # each agent's role
_REASONS = ("json", "schema", "version", "oversize", "time", "target", "conflict", "store")  # every InvalidEvent reason


def register(subparsers: Any) -> None:
    """``dead``."""
    dead = subparsers.add_parser(
        "dead", help="list dead letters with their reasons, or re-drive them to their source topics",
        description="List the records the agents dead-lettered (oldest first), or --redrive them once the cause "
                    "is fixed: each goes back to its source topic once, with its key and record timestamp.",
    )
    dead.add_argument("--reason", action="append", default=[], choices=_REASONS, metavar="R",
                      help=f"only this reason ({', '.join(_REASONS)}); repeatable")
    dead.add_argument("--agent", action="append", default=[], choices=_AGENTS, metavar="A",
                      help=f"only those of this agent ({', '.join(_AGENTS)}); repeatable")
    dead.add_argument("--since", metavar="T", help="dead-lettered at or after T (RFC 3339, or 30m/2h/7d ago)")
    dead.add_argument("--until", metavar="T", help="dead-lettered before T")
    dead.add_argument("--limit", type=positive, default=200, help="list at most the newest N (default 200)")
    dead.add_argument("--json", action="store_true", help="one JSON object per dead letter")
    dead.add_argument("--redrive", action="store_true", help="re-send the matching dead letters not yet re-driven")
    dead.add_argument("--dry-run", action="store_true", help="with --redrive: count, send nothing")
    dead.set_defaults(func=_dead)


def parse_time(text: str, now: datetime | None = None) -> int:
    """``text`` as epoch milliseconds: RFC 3339 with a zone, or a duration ago (``2h``)."""
    now = now or datetime.now(UTC)
    match = _AGO.match(text.strip())
    if match:
        moment = now - timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    else:
        try:
            moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
        except ValueError:
            moment = datetime.min  # naive: refused below
        if moment.tzinfo is None:
            raise ConfigError(f"{text!r} is not a time: give RFC 3339 with a zone or a duration like 30m, 2h, 7d")
    return int(moment.timestamp() * 1000)


def _dead(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.agents.dead import Filters

    filters = Filters(
        reasons=frozenset(args.reason), agents=frozenset(args.agent),
        since_ms=parse_time(args.since) if args.since else None,
        until_ms=parse_time(args.until) if args.until else None,
    )
    if args.dry_run and not args.redrive:
        raise ConfigError("--dry-run goes with --redrive")
    return asyncio.run(_dead_async(args, settings, filters))


async def _dead_async(args: argparse.Namespace, settings: Settings, filters: Any) -> int:
    from fanout.agents.dead import read_dead_letters, redrive

    letters = [d for d in await read_dead_letters(settings) if filters.matches(d)]
    if args.redrive:
        result = await redrive(settings, letters, dry_run=args.dry_run)
        skipped = ", ".join(f"{n} {why}" for why, n in sorted(result.skipped.items())) or "none"
        verb = "would re-drive" if args.dry_run else "re-drove"
        print(f"{verb} {result.redriven} dead letter(s) to their source topics "
              f"(already re-driven: {result.already}; not re-drivable: {skipped})")
        return 0
    shown = letters[-args.limit:] if args.limit > 0 else letters
    if args.json:
        for d in shown:
            print(json.dumps(_doc(d), ensure_ascii=False))
        return 0
    _table(shown, len(letters), settings)
    return 0


def _doc(d: Any) -> dict[str, Any]:
    return {
        "partition": d.partition, "offset": d.offset,
        "dead_lettered_at": datetime.fromtimestamp(d.timestamp_ms / 1000, UTC).isoformat(),
        "reason": d.reason, "agent": d.agent, "source": d.source, "error": d.headers.get("fanout-error", ""),
        "redriven": d.redriven, "truncated": d.truncated, "size": len(d.value or b""),
        "key": None if d.key is None else d.key.decode(errors="replace"),  # null: the record had none
        "value": None if d.value is None else d.value[:300].decode(errors="replace"),  # null: a tombstone
    }


def _table(shown: list[Any], total: int, settings: Settings) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{settings.topic('dead')}: {total} dead letter(s), oldest first")
    for column in ("offset", "dead-lettered", "agent", "reason", "source", "status", "error"):
        table.add_column(column, overflow="fold")
    for d in shown:
        status = "re-driven" if d.redriven else "truncated" if d.truncated else ""
        at = datetime.fromtimestamp(d.timestamp_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
        table.add_row(str(d.offset), at, d.agent, d.reason, d.source, status, d.headers.get("fanout-error", "")[:160])
    Console().print(table)
    if not total:
        print("no dead letters", file=sys.stderr)
