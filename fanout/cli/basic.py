"""``fanout demo|migrate|schemas|version``: the commands that need no Kafka.

    fanout demo [--store memory|cassandra]   the main job on the embedded default
    fanout migrate                           create the Cassandra keyspace and tables
    fanout schemas [--write|--check]         the wire contract's JSON Schema files
    fanout version
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from fanout._version import __version__
from fanout.settings import Settings

from .arguments import at_least, count


def register(sub: Any) -> None:
    """``demo``, ``migrate``, ``schemas`` and ``version``."""
    demo = sub.add_parser("demo", help="run a synthetic social network through fanout and print feeds")
    demo.add_argument("--store", choices=["memory", "cassandra"], default=None, help="default: FANOUT_STORE")
    demo.add_argument("--users", type=at_least(2), default=10_000, help="users in the graph (2 or more)")
    demo.add_argument("--activities", type=count, default=400)
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


def _demo(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.demo import run_demo

    store = args.store or settings.store
    return asyncio.run(run_demo(settings.replace(store=store), users=args.users, activities=args.activities,
                                seed=args.seed))


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.cassandra import migrate

    asyncio.run(migrate(settings))
    print(f"keyspace {settings.cassandra_keyspace!r} is ready on {','.join(settings.cassandra_hosts)}")
    return 0


def _schemas(args: argparse.Namespace, settings: Settings) -> int:
    from fanout.codec import json_schemas
    from fanout.schemas import DIRECTORY

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
