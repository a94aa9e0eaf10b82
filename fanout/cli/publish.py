"""``fanout publish``: produce activity and follow events from flags or JSON lines.

    fanout publish --actor 42 --verb pin --object 7 [--target board:3] [--id ID] [--time T]
    fanout publish --actor 42 --op remove --id ID     (or --verb, --object [--target] and --time of the add)
    fanout publish --follow 7 42 | --unfollow 7 42 | --file events.jsonl | --file -

Publishing an activity prints the id of the activity it adds or removes (given, or derived).
An event the wire contract refuses is an error (exit 2) and nothing is sent; with ``--file``
each bad line is named (with its number) and skipped, the others are sent, and the exit is 1.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from fanout.errors import InvalidEvent, json_error
from fanout.settings import Settings


def register(subparsers: Any) -> None:
    """``publish``."""
    publish = subparsers.add_parser(
        "publish",
        help="produce activity/follow events to Kafka",
        description="Produce one event from flags, or JSON lines (activities, follows) from a file or stdin.",
    )
    publish.add_argument("--actor")
    publish.add_argument("--verb")
    publish.add_argument("--object")
    publish.add_argument("--target")
    publish.add_argument("--id")
    publish.add_argument("--op", choices=["add", "remove"])
    publish.add_argument("--time", help="RFC 3339 time with a zone (default: the broker's timestamp)")
    publish.add_argument("--extra", help="a JSON object")
    publish.add_argument("--to", action="append", metavar="KIND:USER",
                         help="also deliver to this feed, e.g. notification:7 (repeatable)")
    group = publish.add_mutually_exclusive_group()
    group.add_argument("--follow", nargs=2, metavar=("FOLLOWER", "FOLLOWEE"))
    group.add_argument("--unfollow", nargs=2, metavar=("FOLLOWER", "FOLLOWEE"))
    group.add_argument(
        "--file", metavar="F", help="JSON lines; `-` reads stdin; a line with `follower` is a follow"
    )
    publish.set_defaults(func=_publish)


def _publish(args: argparse.Namespace, settings: Settings) -> int:
    if not args.file:
        return asyncio.run(_publish_async(args, settings, None))
    if args.file == "-":
        return asyncio.run(_publish_async(args, settings, (sys.stdin.buffer, None)))
    with open(args.file, "rb") as stream:
        return asyncio.run(_publish_async(args, settings, (stream, os.path.getsize(args.file))))


async def _publish_async(
    args: argparse.Namespace, settings: Settings, lines: tuple[IO[bytes], int | None] | None
) -> int:
    from fanout.codec import check_event_time, follow_event
    from fanout.producer import Producer

    # validated before anything connects to Kafka: a refused event is exit 2 with nothing sent
    follow = None
    if args.follow or args.unfollow:
        op = "follow" if args.follow else "unfollow"
        follower, followee = args.follow or args.unfollow
        follow = check_event_time(follow_event(follower, followee, op, time=args.time), settings)
    event = None if lines is not None or follow is not None else _event_from_flags(args, settings)
    async with Producer(settings) as producer:
        if follow is not None:
            where = await producer.send_follow(follow.follower, follow.followee, follow.op, time=follow.time)
            print(f"{follow.op} {follower} -> {followee}: {where.topic}[{where.partition}]@{where.offset}")
            return 0
        if lines is not None:
            return await _publish_lines(producer, *lines)
        where = await producer.send_activity(event)
        op = "remove" if event is not None and event.op == "remove" else "add"
        print(f"{op} activity {where.activity_id}: {where.topic}[{where.partition}]@{where.offset}")
        return 0


def _event_from_flags(args: argparse.Namespace, settings: Settings) -> Any:
    """The activity event the flags describe, validated before anything connects to Kafka: the
    codec's rules (a remove needs --id, or --verb, --object and --time) fail with exit 2."""
    from fanout.codec import activity_event, check_event_time

    fields: dict[str, Any] = {
        k: getattr(args, k) for k in ("actor", "verb", "object", "target", "id", "op", "time", "to")
    }
    fields = {k: v for k, v in fields.items() if v is not None}
    if args.extra:
        try:
            fields["extra"] = json.loads(args.extra)
        except json.JSONDecodeError as exc:
            raise InvalidEvent(f"--extra is not JSON: {exc}", reason="json") from None
    if "actor" not in fields:
        raise InvalidEvent("fanout publish: give --actor (with --verb and --object, or --op remove and --id), "
                           "or --follow/--unfollow/--file")
    return check_event_time(activity_event(fields, max_bytes=settings.max_event_bytes), settings)


def _lines(stream: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    for number, line in enumerate(stream, start=1):
        line = line.strip()
        if line:
            yield number, line


async def _publish_lines(producer: Any, stream: IO[bytes], total: int | None) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    sent = bad = 0
    progress = Progress(
        TextColumn("publishing"), BarColumn(), MofNCompleteColumn() if total is None else TextColumn(""),
        TextColumn("{task.fields[sent]} sent, {task.fields[bad]} bad"), TimeElapsedColumn(),
        console=err, transient=False, disable=total is None and not err.is_terminal,
    )
    with progress:
        task = progress.add_task("publish", total=total, sent=0, bad=0)
        for number, line in _lines(stream):
            try:
                await _queue_line(producer, line)
                sent += 1
            except InvalidEvent as exc:
                bad += 1
                err.print(f"line {number}: {exc.reason}: {exc}", markup=False, highlight=False)
            if number % 50 == 0:
                completed = stream.tell() if total is not None else None
                progress.update(task, completed=completed, sent=sent, bad=bad)
        await producer.flush()
        progress.update(task, completed=total, sent=sent, bad=bad)
    print(f"sent {sent} events, skipped {bad} bad line(s)")
    return 1 if bad else 0


async def _queue_line(producer: Any, line: bytes) -> None:
    try:
        data = msgspec.json.decode(line)
    except msgspec.DecodeError as exc:
        raise InvalidEvent(f"not valid JSON: {json_error(str(exc), line)}", reason="json") from None
    if not isinstance(data, dict):
        raise InvalidEvent("a line must be a JSON object", reason="schema")
    if "follower" in data or "followee" in data:
        from fanout.codec import decode_follow_event

        event = decode_follow_event(line, max_bytes=producer.settings.max_event_bytes)
        await producer.queue_follow(event.follower, event.followee, event.op, time=event.time)
    else:
        await producer.queue_activity(data)
