"""``fanout topics create|check`` and ``fanout worker ROLE``: running the Kafka pipeline.

    fanout topics create|check
    fanout worker planner|writer|follows|all [--priority high|low] [--metrics-port N] [--from earliest|latest]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from typing import Any

from fanout.agents import PRIORITIES
from fanout.settings import Settings

from .arguments import count, port, positive, seconds


def register(subparsers: Any) -> None:
    """``topics`` and ``worker``."""
    topics = subparsers.add_parser(
        "topics",
        help="create or check the pipeline's Kafka topics",
        description="create: make the missing topics (idempotent) and pin the agent groups at their start; "
        "check: name every difference (partitions, retention.ms, cleanup.policy, compression.type) from the "
        "settings. Both exit 1 when a topic differs.",
    )
    topics.add_argument("action", choices=["create", "check"], help="create (idempotent) or check")
    topics.set_defaults(func=_topics)

    worker = subparsers.add_parser(
        "worker",
        help="run a pipeline agent until SIGTERM/SIGINT",
        description="Run one agent (its own consumer group) or, with `all`, every agent as a subprocess.",
    )
    worker.add_argument("role", choices=["planner", "writer", "follows", "all"])
    worker.add_argument("--priority", choices=PRIORITIES, help="writer: which chunk topic to write")
    worker.add_argument("--metrics-port", type=port, help="serve Prometheus /metrics on this port")
    worker.add_argument("--instance-id", help="static group membership id (a restart resumes at once)")
    worker.add_argument(
        "--batch-max-records", type=positive,
        help="records per batch for this worker (default FANOUT_BATCH_MAX_RECORDS; a writer's record is "
        "a chunk of up to chunk_size rows)",
    )
    worker.add_argument(
        "--from", dest="start_from", choices=["earliest", "latest"],
        help="where the group starts on partitions it never committed that hold records (else the agent "
        "refuses to start): earliest processes them, latest skips them",
    )
    worker.add_argument("--grace", type=seconds, default=6.0, help="seconds to finish a batch on stop (6)")
    worker.add_argument("--session-timeout-ms", type=positive, default=10_000, help="consumer session timeout")
    worker.add_argument("--planners", type=count, default=1, help="all: planner processes (1)")
    worker.add_argument("--high-writers", type=count, default=3, help="all: high writer processes (3)")
    worker.add_argument("--low-writers", type=count, default=1, help="all: low writer processes (1)")
    worker.add_argument("--follows", type=count, default=1, help="all: follows agent processes (1)")
    worker.add_argument(
        "--max-restarts", type=count, default=5,
        help="all: restarts in a row (each after less than 60 s of running) before a crashing agent stops "
        "them all and `worker all` exits non-zero (5)",
    )
    worker.add_argument(
        "--parent-pid", type=int,
        help="stop when this process is gone (`worker all` passes its own pid to its agents)",
    )
    worker.add_argument("--init", action="store_true", help="all: create topics, migrate first")
    worker.add_argument(
        "--log-level", type=str.upper, default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
        help="the agents' log level, in any case (INFO)",
    )
    worker.set_defaults(func=_worker)


def _topics(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.agents.topics import create_topics, describe_topics, topic_drift, topic_specs

    async def run() -> int:
        created = await create_topics(settings) if args.action == "create" else []
        drift = await topic_drift(settings)
        if args.action == "create":
            actual = await describe_topics(settings)
            for name, (partitions, _) in topic_specs(settings).items():
                state = "created" if name in created else "exists"
                if name in drift:
                    state += ", differs (see `fanout topics check`)"
                print(f"{name:40} {actual.get(name, partitions):3d} partitions  {state}")
        else:
            for lines in drift.values():
                for line in lines:
                    print(line)
            if not drift:
                print("every pipeline topic exists as the settings describe it")
        return 1 if drift else 0

    return asyncio.run(run())


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
    if args.metrics_port and (taken := _metrics_ports_taken(args)):  # before connecting to anything
        print(f"fanout: {taken} (choose another --metrics-port)", file=sys.stderr)
        return 2
    if args.role == "all":
        return asyncio.run(_supervise(args, settings))
    from fanout.agents.supervisor import die_with_parent
    from fanout.agents.worker import run_worker, yield_cpu

    if args.parent_pid and not die_with_parent(args.parent_pid):
        print(f"fanout worker {label}: the supervisor (pid {args.parent_pid}) is gone; not starting", file=sys.stderr)
        return 0
    yielded = yield_cpu(args.role, args.priority, settings)  # before anything starts a thread
    if yielded is not None:
        logging.getLogger("fanout.agents").info(
            "niceness %d%s (FANOUT_LOW_NICE=%d): the HIGH writers, the planner and the servers get more of the CPU",
            yielded.niceness, ", its session's autogroup too" if yielded.autogroup else "", settings.low_nice)
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
                start_from=args.start_from,
                parent_pid=args.parent_pid,
            )
        )
    except asyncio.CancelledError:  # a second SIGINT/SIGTERM: stopped without finishing the batch
        return 130
    return 0


def _metrics_ports_taken(args: argparse.Namespace) -> str | None:
    """Why ``--metrics-port`` cannot be listened on (``worker all``: N, N+1, ... one per agent), or None."""
    from fanout.agents.health import HOST

    from .serve import listen, listen_failure

    first = args.metrics_port
    agents = args.planners + args.high_writers + args.low_writers + args.follows if args.role == "all" else 1
    given = f"--metrics-port {first}" + (f" gives worker all's {agents} agents {first} to {first + agents - 1}"
                                         if args.role == "all" else "")
    if first + agents - 1 > 65_535:
        return f"{given}: over 65535"
    for each in range(first, first + agents):
        try:
            for sock in listen(HOST, each, backlog=1):
                sock.close()
        except OSError as exc:
            return f"cannot listen on {HOST}:{each} ({given}): {listen_failure(exc)}"
    return None


async def _supervise(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.agents.signals import stop_on_signals
    from fanout.agents.supervisor import supervise

    if args.init:
        from fanout.agents.topics import create_topics
        from fanout.cassandra import migrate

        await create_topics(settings)
        await migrate(settings)
    stop = asyncio.Event()
    with stop_on_signals(stop):
        return await supervise(
            settings,
            stop=stop,
            planners=args.planners,
            high_writers=args.high_writers,
            low_writers=args.low_writers,
            follows=args.follows,
            metrics_port=args.metrics_port,
            start_from=args.start_from,
            max_restarts=args.max_restarts,
        )
