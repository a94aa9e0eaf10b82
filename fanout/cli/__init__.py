"""The ``fanout`` command: one argparse tree, one module per group of subcommands.

    basic     demo, migrate, schemas, version    (no Kafka needed)
    pipeline  topics create|check, worker ROLE
    publish   publish
    read      feed, lag
    groups    notifications (and feed of an aggregated kind)
    dead      dead [--redrive]
    replay    replay, rebuild
    serve     serve                               (the HTTP API)
    arguments the argument types (ids, limits, ports, counts, seconds) every module uses

Each module has ``register(subparsers)``; every command is ``func(args, settings) -> exit code``.
Settings come from ``FANOUT_*`` variables (``fanout.settings``). Errors a user can cause print
one line saying what to do, never a traceback, and exit 2 (a bad setting, an invalid event, a
missing topic, a request refused) or ``EXIT_UNAVAILABLE``, 75 (Kafka or Cassandra not reachable
or timing out: try again later).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

from aiokafka.errors import KafkaConnectionError, KafkaError, KafkaTimeoutError

from fanout._version import __version__
from fanout.errors import EXIT_UNAVAILABLE, FanoutError
from fanout.settings import Settings

from . import basic, dead, groups, pipeline, publish, read, replay, serve

_COMMAND_MODULES = (basic, pipeline, publish, read, groups, replay, dead, serve)

# the Kafka client's own lines ("Unable connect to ...") only where a command sets up logging
# (worker, serve); elsewhere the one line `main` prints says it
logging.getLogger("aiokafka").addHandler(logging.NullHandler())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fanout", description="Kafka-native activity feed fanout.")
    parser.add_argument("--version", action="version", version=f"fanout {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        result = args.func(args, settings)
        sys.stdout.flush()  # inside the try: a reader gone away is met here, not at exit
    except FanoutError as exc:
        print(f"fanout: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if exc.retriable else 2
    except KafkaConnectionError as exc:
        print(f"fanout: Kafka not reachable at {settings.kafka_bootstrap} (start it, e.g. `make up`, or set "
              f"FANOUT_KAFKA_BOOTSTRAP and the FANOUT_KAFKA_SECURITY_PROTOCOL/SASL/SSL settings): {exc}",
              file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KafkaTimeoutError as exc:  # not retriable to aiokafka (a full send buffer), but an outage here
        print(f"fanout: Kafka did not answer in time: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except KafkaError as exc:
        print(f"fanout: Kafka refused the request: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE if exc.retriable else 2
    except BrokenPipeError:  # the reader went away (`fanout lag | head`): stop quietly, as `cat` does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except OSError as exc:  # a file named on the command line; a TimeoutError says nothing itself
        print(f"fanout: {str(exc) or repr(exc)}", file=sys.stderr)
        return EXIT_UNAVAILABLE if isinstance(exc, TimeoutError) else 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


__all__ = ["build_parser", "main"]
