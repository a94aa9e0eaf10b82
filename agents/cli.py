"""The pipeline's subcommands of ``fanout`` (``fanout.cli`` calls ``register``).

    fanout topics create|check
    fanout worker planner|writer|follows|all [--priority high|low] [--metrics-port N]
    fanout publish --actor 42 --verb pin --object 7 [--target board:3] [--id ID] [--op remove]
    fanout publish --follow 7 42 | --unfollow 7 42 | --file events.jsonl | --file -
    fanout feed USER [--kind timeline|user] [--limit N] [--before ID] [--json]
    fanout lag [--json]

Settings come from ``FANOUT_*`` variables (``fanout.settings``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import IO, Any

import msgspec

from fanout.errors import InvalidEvent
from fanout.settings import Settings

from . import PRIORITIES


def register(subparsers: Any) -> None:
    """Add ``topics``, ``worker``, ``publish``, ``lag``, ``feed``, ``replay`` and ``rebuild``."""
    from .replay import register_replay

    register_replay(subparsers)
    topics = subparsers.add_parser("topics", help="create or check the pipeline's Kafka topics")
    topics.add_argument("action", choices=["create", "check"], help="create (idempotent) or check")
    topics.set_defaults(func=_topics)

    worker = subparsers.add_parser(
        "worker",
        help="run a pipeline agent until SIGTERM/SIGINT",
        description="Run one agent (its own consumer group) or, with `all`, every agent as a subprocess.",
    )
    worker.add_argument("role", choices=["planner", "writer", "follows", "all"])
    worker.add_argument("--priority", choices=PRIORITIES, help="writer: which chunk topic to write")
    worker.add_argument("--metrics-port", type=int, help="serve Prometheus /metrics on this port")
    worker.add_argument("--instance-id", help="static group membership id (a restart resumes at once)")
    worker.add_argument(
        "--batch-max-records", type=int,
        help="records per batch for this worker (default FANOUT_BATCH_MAX_RECORDS; a writer's record is "
        "a chunk of up to chunk_size rows)",
    )
    worker.add_argument("--grace", type=float, default=6.0, help="seconds to finish a batch on stop (6)")
    worker.add_argument("--session-timeout-ms", type=int, default=10_000, help="consumer session timeout")
    worker.add_argument("--high-writers", type=int, default=3, help="all: high writer processes (3)")
    worker.add_argument("--low-writers", type=int, default=1, help="all: low writer processes (1)")
    worker.add_argument("--init", action="store_true", help="all: create topics, migrate first")
    worker.add_argument("--log-level", default="INFO")
    worker.set_defaults(func=_worker)

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
    group = publish.add_mutually_exclusive_group()
    group.add_argument("--follow", nargs=2, metavar=("FOLLOWER", "FOLLOWEE"))
    group.add_argument("--unfollow", nargs=2, metavar=("FOLLOWER", "FOLLOWEE"))
    group.add_argument(
        "--file", metavar="F", help="JSON lines; `-` reads stdin; a line with `follower` is a follow"
    )
    publish.set_defaults(func=_publish)

    feed = subparsers.add_parser("feed", help="read a feed from the Cassandra store, newest first")
    feed.add_argument("user")
    feed.add_argument("--kind", default="timeline", help="timeline (default) or user")
    feed.add_argument("--limit", type=int, default=25)
    feed.add_argument("--before", metavar="ID", help="only activities older than this activity id")
    feed.add_argument("--json", action="store_true", help="one JSON object per line")
    feed.set_defaults(func=_feed)

    lag = subparsers.add_parser("lag", help="consumer lag of every agent group, per partition")
    lag.add_argument("--json", action="store_true", help="one JSON object per partition")
    lag.set_defaults(func=_lag)


# topics ------------------------------------------------------------------------------------
def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from .topics import check_topics, create_topics, topic_specs

    if args.action == "create":
        created = asyncio.run(create_topics(settings))
        for name, (partitions, _) in topic_specs(settings).items():
            state = "created" if name in created else "exists"
            print(f"{name:40} {partitions:3d} partitions  {state}")
        return 0
    asyncio.run(check_topics(settings))
    print("all pipeline topics exist")
    return 0


# worker ------------------------------------------------------------------------------------
def _worker(args: argparse.Namespace, settings: Settings) -> int:
    label = args.role + (f"-{args.priority}" if args.priority else "")
    logging.basicConfig(
        level=args.log_level.upper(),
        format=f"%(asctime)s %(levelname)s [{label} %(process)d] %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiokafka").setLevel(logging.WARNING)
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    if args.batch_max_records:
        settings = settings.replace(batch_max_records=args.batch_max_records)
    if args.role == "writer" and args.priority is None:
        print("fanout worker writer: give --priority high or --priority low", file=sys.stderr)
        return 2
    if args.role == "all":
        return asyncio.run(_supervise(args, settings))
    from .worker import run_worker

    try:
        asyncio.run(
            run_worker(
                args.role,
                settings,
                priority=args.priority,
                metrics_port=args.metrics_port,
                instance_id=args.instance_id,
                grace_seconds=args.grace,
                session_timeout_ms=args.session_timeout_ms,
            )
        )
    except asyncio.CancelledError:  # a second SIGINT/SIGTERM: stopped without finishing the batch
        return 130
    return 0


async def _supervise(args: argparse.Namespace, settings: Settings) -> int:
    from .supervisor import supervise
    from .worker import _SignalStop

    if args.init:
        from fanout.cassandra import migrate

        from .topics import create_topics

        await create_topics(settings)
        await migrate(settings)
    stop = asyncio.Event()
    with _SignalStop(stop, None):
        return await supervise(
            settings,
            stop=stop,
            high_writers=args.high_writers,
            low_writers=args.low_writers,
            metrics_port=args.metrics_port,
        )


# publish -----------------------------------------------------------------------------------
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
    from fanout.producer import Producer

    async with Producer(settings) as producer:
        if args.follow or args.unfollow:
            follower, followee = args.follow or args.unfollow
            op = "follow" if args.follow else "unfollow"
            where = await producer.send_follow(follower, followee, op, time=args.time)
            print(f"{op} {follower} -> {followee}: {where.topic}[{where.partition}]@{where.offset}")
            return 0
        if lines is not None:
            return await _publish_lines(producer, *lines)
        fields: dict[str, Any] = {
            k: getattr(args, k) for k in ("actor", "verb", "object", "target", "id", "op", "time")
        }
        fields = {k: v for k, v in fields.items() if v is not None}
        if args.extra:
            try:
                fields["extra"] = json.loads(args.extra)
            except json.JSONDecodeError as exc:
                raise InvalidEvent(f"--extra is not JSON: {exc}", reason="json") from None
        if not {"actor", "verb", "object"} <= fields.keys():
            print("fanout publish: give --actor, --verb and --object (or --follow/--unfollow/--file)",
                  file=sys.stderr)
            return 2
        where = await producer.send_activity(fields)
        print(f"activity of {fields['actor']}: {where.topic}[{where.partition}]@{where.offset}")
        return 0


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
        raise InvalidEvent(f"not valid JSON: {exc}", reason="json") from None
    if not isinstance(data, dict):
        raise InvalidEvent("a line must be a JSON object", reason="schema")
    if "follower" in data or "followee" in data:
        from fanout.codec import decode_follow_event

        event = decode_follow_event(line, max_bytes=producer.settings.max_event_bytes)
        await producer.queue_follow(event.follower, event.followee, event.op, time=event.time)
    else:
        await producer.queue_activity(data)


# feed --------------------------------------------------------------------------------------
def _feed(args: argparse.Namespace, settings: Settings) -> int:
    return asyncio.run(_feed_async(args, settings))


async def _feed_async(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.core import Fanout

    from .worker import open_store

    store = await open_store(settings)
    async with Fanout(store, settings) as fanout:
        page = await fanout.read(args.user, kind=args.kind, limit=args.limit, before=args.before, touch=False)
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


# lag ---------------------------------------------------------------------------------------
def _lag(args: argparse.Namespace, settings: Settings) -> int:
    from .lag import consumer_lag, totals

    rows = asyncio.run(consumer_lag(settings))
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
    if not rows:
        print("no pipeline topics found: run `fanout topics create`", file=sys.stderr)
    return 0
