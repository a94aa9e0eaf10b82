"""``fanout notifications`` and ``fanout feed`` of an aggregated kind: groups and their counts.

    fanout notifications USER [--limit N] [--mark-seen | --mark-read] [--json]
    fanout feed USER --kind notification|aggregated [--limit N] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from fanout.settings import Settings

from .arguments import identifier, positive


def register(subparsers: Any) -> None:
    """``notifications``."""
    notes = subparsers.add_parser("notifications", help="a user's notification groups, seen/read and counts")
    notes.add_argument("user", type=identifier)
    notes.add_argument("--kind", help="a notification kind (default: the first of FANOUT_NOTIFICATION_KINDS)")
    notes.add_argument("--limit", type=positive, default=25)
    marks = notes.add_mutually_exclusive_group()
    marks.add_argument("--mark-seen", action="store_true",
                       help="then mark every group seen, up to the newest printed")
    marks.add_argument("--mark-read", action="store_true",
                       help="then mark every group read (and seen), up to the newest printed")
    notes.add_argument("--json", action="store_true", help="the page as the HTTP API answers it")
    notes.set_defaults(func=_notifications)


def _notifications(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(show(args, settings, notification=True))


async def show(args: argparse.Namespace, settings: Settings, *, notification: bool) -> int:
    """Print a page of groups of ``args.user``'s feed of ``args.kind`` (and mark them, if asked)."""
    from fanout.activity import from_micros
    from fanout.agents.stores import open_store
    from fanout.aggregation import Group
    from fanout.core import Fanout
    from fanout.http.models import GroupPage, NotificationPage, encode, group_doc, notification_doc

    kind = args.kind or (settings.notification_kinds[0] if settings.notification_kinds else "notification")
    rows: list[tuple[Group, bool | None, bool | None]]
    doc: GroupPage | NotificationPage
    store = await open_store(settings)
    async with Fanout(store, settings) as fanout:
        if notification:
            page = await fanout.notifications(args.user, kind=kind, limit=args.limit)
            rows = [(n.group, n.seen, n.read) for n in page.groups]
            counts = f"unseen {page.unseen}, unread {page.unread}"
            doc = NotificationPage(groups=[notification_doc(n.group, n.seen, n.read) for n in page.groups],
                                   unseen=page.unseen, unread=page.unread, next=None)
            if (getattr(args, "mark_seen", False) or getattr(args, "mark_read", False)) and rows:
                mark = fanout.mark_seen if args.mark_seen else fanout.mark_read
                # up to what was printed: a group that got an activity since stays unseen
                after = await mark(args.user, None, kind=kind, up_to=from_micros(rows[0][0].last_ts))
                counts += f"; marked all {'seen' if args.mark_seen else 'read'}: unseen {after.unseen}, " \
                          f"unread {after.unread}"
        else:
            groups = (await fanout.read_aggregated(args.user, kind=kind, limit=args.limit)).groups
            rows = [(g, None, None) for g in groups]
            counts = f"{len(groups)} groups"
            doc = GroupPage(groups=[group_doc(g) for g in groups], next=None)
    if args.json:
        print(encode(doc).decode())
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{kind}:{args.user} (groups, newest first)")
    for column in ("last time", "verb", "activities", "actors", "newest", *(("seen", "read") if notification else ()),
                   "group"):
        table.add_column(column, overflow="fold")
    for group, seen, read in rows:
        newest = ", ".join(f"{a.actor} {a.object}" for a in group.activities[:3])
        state = () if seen is None else ("yes" if seen else "no", "yes" if read else "no")
        table.add_row(from_micros(group.last_ts).isoformat(), group.verb, str(group.activity_count),
                      str(group.actor_count), newest, *state, group.id)
    Console().print(table)
    print(counts)
    return 0

