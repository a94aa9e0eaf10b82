"""``fanout serve``: the HTTP API (``fanout.http``) on uvicorn.

    fanout serve [--host 127.0.0.1] [--port 8000] [--log-level info] [--shutdown-timeout 30]

It starts even when Kafka or Cassandra is down (``/readyz`` says which; requests that need it get
503) and stops on SIGTERM/SIGINT after the requests in progress (uvicorn's graceful shutdown), for
at most ``--shutdown-timeout`` seconds: then the requests still in progress are cut (a client that
stopped sending in the middle of a body would otherwise keep the server running until it hangs up).
It listens before uvicorn starts: an address it cannot listen on (a port in use, an address not of
this machine) is one line naming it, and exit status 2.
Its log (standard error): uvicorn's lines, and with the time the client libraries' warnings as
the agents print them: while Cassandra is away the driver's (one per reconnection attempt, every
2 s at most) and while Kafka is away aiokafka's (one per connection attempt of every request),
each distinct one once a minute, on one line (``QuietDriverLogs``, ``OncePerMinute``).
"""

from __future__ import annotations

import argparse
import errno
import logging
import signal
import socket
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
    serve.add_argument("--log-level", type=str.lower, default="info",
                       choices=["critical", "error", "warning", "info", "debug"], help="in any case (info)")
    serve.add_argument(
        "--shutdown-timeout", type=count, default=30, metavar="SECONDS",
        help="on SIGTERM/SIGINT, wait this long for the requests in progress, then cut them and exit (30)",
    )
    serve.set_defaults(func=_serve)


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from fanout.http import create_app

    where = f"[{args.host}]:{args.port}" if ":" in args.host else f"{args.host}:{args.port}"
    try:
        sockets = listen(args.host, args.port)
    except OSError as exc:
        print(f"fanout: cannot listen on {where}: {listen_failure(exc)} (choose another --port or --host)",
              file=sys.stderr)
        return 2
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
        config = uvicorn.Config(create_app(settings), log_level=args.log_level, server_header=False,
                                timeout_graceful_shutdown=args.shutdown_timeout)

        class Server(uvicorn.Server):
            async def startup(self, sockets: list[socket.socket] | None = None) -> None:
                await super().startup(sockets=sockets)
                if self.started:  # uvicorn says where only on sockets it bound itself
                    logging.getLogger("uvicorn.error").info("Uvicorn running on http://%s (Press CTRL+C to quit)",
                                                            where)

        Server(config).run(sockets=sockets)  # what uvicorn.run(app, host=, port=) does, on these sockets
    except KeyboardInterrupt:  # a SIGINT raised again after the graceful stop, as uvicorn.run ends
        pass
    finally:
        for sock in sockets:
            sock.close()
        for each in quiet:
            each.uninstall()
        signal.signal(signal.SIGTERM, previous)
    return 0


def listen(host: str, port: int, backlog: int = 2048) -> list[socket.socket]:
    """Sockets listening on every address ``host`` names (as asyncio's ``create_server`` binds a
    host and port: ``""`` is every interface), before uvicorn starts; ``OSError`` if one cannot."""
    sockets: list[socket.socket] = []
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        for family, kind, proto, _, address in dict.fromkeys(infos):
            # proto is IPPROTO_TCP: asyncio sets TCP_NODELAY only on such sockets
            try:
                sock = socket.socket(family, kind, proto)
            except OSError as exc:  # a kernel without IPv6: skipped, as asyncio's create_server does
                if exc.errno == errno.EAFNOSUPPORT:
                    continue
                raise
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(address)
            sock.listen(backlog)
        if not sockets:
            raise OSError(errno.EAFNOSUPPORT, f"no address family of {host!r} is supported here")
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


def listen_failure(exc: OSError) -> str:
    """Why a socket could not listen, in a few words: ``address already in use``."""
    if isinstance(exc, socket.gaierror):
        return f"not an IP address nor a host name that resolves: {(exc.strerror or str(exc)).lower()}"
    reasons = {
        errno.EADDRINUSE: "address already in use",
        errno.EADDRNOTAVAIL: "not an address of this machine",
        errno.EACCES: "permission denied (a port under 1024 needs privileges)",
    }
    return reasons.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
