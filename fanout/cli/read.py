"""``fanout feed``, ``fanout lag`` and ``fanout trace``: a feed, the agents' consumer lag, a delivery.

    fanout feed USER [--kind timeline|user|aggregated|notification] [--limit N] [--before ID] [--json]
    fanout lag [--json]
    fanout trace ACTIVITY_ID [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

import msgspec

from fanout.errors import ConfigError
from fanout.settings import Settings

from .arguments import identifier, positive


def register(subparsers: Any) -> None:
    """``feed`` and ``lag``."""
    feed = subparsers.add_parser("feed", help="read a feed from the Cassandra store, newest first")
    feed.add_argument("user", type=identifier)
    feed.add_argument("--kind", default="timeline",
                      help="timeline (default), user, or an aggregated kind (groups; notification: with counts)")
    feed.add_argument("--limit", type=positive, default=25)
    feed.add_argument("--before", metavar="ID", type=identifier, help="only activities older than this activity id")
    feed.add_argument("--json", action="store_true", help="one JSON object per line")
    feed.set_defaults(func=_feed)

    lag = subparsers.add_parser("lag", help="consumer lag of every agent group, per partition")
    lag.add_argument("--json", action="store_true", help="one JSON object per partition")
    lag.set_defaults(func=_lag)

    trace = subparsers.add_parser("trace", help="how far an activity's fanout (and its removal's) got")
    trace.add_argument("activity_id", type=identifier)
    trace.add_argument("--json", action="store_true", help="the report as one JSON object")
    trace.set_defaults(func=_trace)


def _feed(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_feed_async(args, settings))


async def _feed_async(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.agents.stores import open_store
    from fanout.core import Fanout
    from fanout.targets import known_kinds

    if args.kind not in known_kinds(settings):
        raise ConfigError(f"unknown feed kind {args.kind!r}: one of {', '.join(known_kinds(settings))} "
                          "(FANOUT_FEED_KINDS, FANOUT_USER_FEED_KIND, FANOUT_AGGREGATED_KINDS)")
    if args.kind in settings.aggregation():
        from .groups import show

        return await show(args, settings, notification=args.kind in settings.notification_kinds)
    store = await open_store(settings)
    async with Fanout(store, settings) as fanout:
        page = await fanout.read(args.user, kind=args.kind, limit=args.limit, before=args.before)
    if args.json:
        for activity in page:
            doc = msgspec.to_builtins(activity)
            doc["time"] = activity.time.isoformat()
            print(json.dumps(doc, ensure_ascii=False))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{args.kind}:{args.user} (newest first)")
    for column in ("time", "actor", "verb", "object", "target", "id"):
        table.add_column(column, overflow="fold")
    for a in page:
        table.add_row(a.time.isoformat(), a.actor, a.verb, a.object, a.target or "", a.id)
    Console().print(table)
    return 0


def _lag(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.agents.lag import consumer_lag, totals

    rows = asyncio.run(consumer_lag(settings))
    if not rows:  # a typo in FANOUT_TOPIC_PREFIX, or before `topics create`: not an idle pipeline
        raise ConfigError("no pipeline topics found: run `fanout topics create`")
    if args.json:
        for row in rows:
            print(json.dumps(row._asdict()))
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="consumer lag (log end offset - committed offset)")
    for column, justify in (("group", "left"), ("topic", "left"), ("partition", "right"),
                            ("committed", "right"), ("end", "right"), ("lag", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for row in rows:
        committed = "-" if row.committed is None else str(row.committed)
        table.add_row(row.group, row.topic, str(row.partition), committed, str(row.end), str(row.lag))
    sums = totals(rows)
    table.add_section()
    for group, total in sums.items():
        table.add_row(group, "total", "", "", "", f"[bold]{total}[/bold]")
    Console().print(table)
    return 0


def _trace(args: argparse.Namespace, settings: Settings) -> int:
    """Exit 0 when every recorded op is complete, 1 while one is not (or nothing is recorded)."""
    return asyncio.run(_trace_async(args, settings))


async def _trace_async(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.agents.stores import open_store
    from fanout.core import Fanout

    store = await open_store(settings)
    async with Fanout(store, settings) as fanout:
        report = await fanout.delivery(args.activity_id)
    ops = [op for op in (report.add, report.remove) if op is not None]
    done = 0 if ops and all(op.complete for op in ops) else 1
    if args.json:
        print(msgspec.json.encode(report).decode())
        return done
    if not ops:
        print(f"{args.activity_id}: nothing recorded (unknown id, not planned yet, or its trace expired)")
        return done
    for name, op in (("add", report.add), ("remove", report.remove)):
        if op is None:
            continue
        state = "complete" if op.complete else ("in progress" if op.planned else "planning")
        print(f"{name}: {state}; planned at {_when(op.planned_at)}, first landed {_when(op.first_landed)}, "
              f"last landed {_when(op.last_landed)}")
        for priority, d in op.priorities.items():
            planned = "?" if d.chunks_planned is None else f"{d.chunks_planned} chunks / {d.feeds_planned} feeds"
            print(f"  {priority:<5} planned {planned}, written {d.chunks_written} chunks / {d.feeds_written} feeds")
    return done


def _when(value: Any) -> str:
    return "-" if value is None else value.isoformat()
