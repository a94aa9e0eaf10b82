"""The ``fanout`` command. Thin: it parses arguments and calls the library.

    fanout demo [--store memory|cassandra]   the main job on the embedded default
    fanout migrate                           create the Cassandra keyspace and tables
    fanout schemas [--write|--check]         the wire contract's JSON Schema files
    fanout version

The Kafka commands (topics, worker, publish, feed, lag, replay, rebuild) come from
``agents.cli``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Sequence

from ._version import __version__
from .errors import FanoutError
from .settings import Settings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fanout", description="Kafka-native activity feed fanout.")
    parser.add_argument("--version", action="version", version=f"fanout {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser("demo", help="run a synthetic social network through fanout and print feeds")
    demo.add_argument("--store", choices=["memory", "cassandra"], default=None, help="default: FANOUT_STORE")
    demo.add_argument("--users", type=int, default=10_000)
    demo.add_argument("--activities", type=int, default=400)
    demo.add_argument("--seed", type=int, default=7)
    demo.set_defaults(func=_demo)

    migrate = sub.add_parser("migrate", help="create the Cassandra keyspace and tables (idempotent)")
    migrate.set_defaults(func=_migrate)

    schemas = sub.add_parser("schemas", help="print, write or check the JSON Schema files in schemas/")
    group = schemas.add_mutually_exclusive_group()
    group.add_argument("--write", action="store_true", help="regenerate schemas/*.json from the codecs")
    group.add_argument("--check", action="store_true", help="exit 1 if the files differ from the codecs")
    schemas.set_defaults(func=_schemas)

    version = sub.add_parser("version", help="print the version")
    version.set_defaults(func=lambda args, settings: print(f"fanout {__version__}") or 0)

    try:
        from fanout.agents.cli import register
    except ImportError:  # pragma: no cover - the agents package ships with fanout
        pass
    else:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env()
        result = args.func(args, settings)
    except FanoutError as exc:
        print(f"fanout: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from .demo import run_demo

    store = args.store or settings.store
    return asyncio.run(run_demo(settings.replace(store=store), users=args.users, activities=args.activities,
                                seed=args.seed))


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from .cassandra import migrate

    asyncio.run(migrate(settings))
    print(f"keyspace {settings.cassandra_keyspace!r} is ready on {','.join(settings.cassandra_hosts)}")
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.schemas import DIRECTORY

    from .codec import json_schemas

    wanted = {name: json.dumps(doc, indent=2, sort_keys=True) + "\n" for name, doc in json_schemas().items()}
    if args.write:
        for name, text in wanted.items():
            (DIRECTORY / name).write_text(text)
            print(f"wrote schemas/{name}")
        return 0
    if args.check:
        stale = [n for n, text in wanted.items() if not (DIRECTORY / n).exists() or (DIRECTORY / n).read_text() != text]
        for name in stale:
            print(f"schemas/{name} differs from fanout.codec: run `fanout schemas --write`", file=sys.stderr)
        return 1 if stale else 0
    for name, text in wanted.items():
        print(f"# schemas/{name}\n{text}")
    return 0
