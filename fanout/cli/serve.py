"""``fanout serve``: the HTTP API (``fanout.http``) on uvicorn.

    fanout serve [--host 127.0.0.1] [--port 8000] [--log-level info] [--shutdown-timeout 30]

It starts even when Kafka or Cassandra is down (``/readyz`` says which; requests that need it get
503) and stops on SIGTERM/SIGINT after the requests in progress (uvicorn's graceful shutdown), for
at most ``--shutdown-timeout`` seconds: then the requests still in progress are cut (a client that
stopped sending in the middle of a body would otherwise keep the server running until it hangs up).
Its log (standard error): uvicorn's lines, and with the time the client libraries' warnings as
the agents print them: while Cassandra is away the driver's (one per reconnection attempt, every
2 s at most) and while Kafka is away aiokafka's (one per connection attempt of every request),
each distinct one once a minute, on one line (``QuietDriverLogs``, ``OncePerMinute``).
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from typing import Any

from fanout.agents.quietlogs import OncePerMinute, QuietDriverLogs
from fanout.settings import Settings

from .arguments import count, port


def register(sub: Any) -> None:
    """``serve``."""
    serve = sub.add_parser("serve", help="the HTTP API: read feeds and follows, produce events (uvicorn)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=port, default=8000, help="port to listen on (default 8000)")
    serve.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    serve.add_argument(
        "--shutdown-timeout", type=count, default=30, metavar="SECONDS",
        help="on SIGTERM/SIGINT, wait this long for the requests in progress, then cut them and exit (30)",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from fanout.http import create_app

    # uvicorn shuts down gracefully on SIGTERM, then raises the signal again to the handler that
    # was there before it: a no-op one lets the command end with 0, like `fanout worker`.
    previous = signal.signal(signal.SIGTERM, lambda signum, frame: None)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s [serve %(process)d] %(message)s")
    for library in ("cassandra", "aiokafka"):
        logging.getLogger(library).setLevel(max(logging.WARNING, logging.getLogger().level))
    quiet = [QuietDriverLogs(), OncePerMinute("aiokafka")]
    for each in quiet:
        each.install()
    try:
        uvicorn.run(create_app(settings), host=args.host, port=args.port, log_level=args.log_level,
                    server_header=False, timeout_graceful_shutdown=args.shutdown_timeout)
    finally:
        for each in quiet:
            each.uninstall()
        signal.signal(signal.SIGTERM, previous)
    return 0
