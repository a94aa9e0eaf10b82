#!/usr/bin/env python3
"""Readiness checks for the local Kafka broker and Cassandra node (stdlib only).

A service is ready when it answers its real wire protocol, not merely when its port is open:

* kafka:     ApiVersions v0, then Metadata v1 must list ``--nodes`` brokers (default 1) and a controller.
* cassandra: CQL native protocol v4 OPTIONS, STARTUP, then
             ``SELECT release_version FROM system.local`` must return a row, and with ``--nodes N``
             above 1, ``system.peers`` must list the N - 1 other nodes of the cluster.

Usage::

    wait_ready.py kafka     [--host 127.0.0.1] [--port 9092] [--nodes 1] [--timeout 120] [--pid PID] [--since EPOCH]
    wait_ready.py cassandra [--host 127.0.0.1] [--port 9042] [--nodes 1] [--timeout 120] [--pid PID] [--since EPOCH]
    wait_ready.py kafka --once      # a single probe, for `services.sh status`

Exit status 0 when ready (prints one line: ``ready <seconds> <detail>``); 1 on timeout or when
the process given by --pid has died (the reason goes to stderr); 2 on bad usage. It needs no
third-party package, so `make up` works before the project's virtualenv exists.
"""

from __future__ import annotations

import argparse
import os
import socket
import struct
import sys
import time
from typing import Any

DEFAULT_PORTS = {"kafka": 9092, "cassandra": 9042}


class NotReady(Exception):
    """The service does not (yet) answer its protocol correctly."""


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            raise NotReady("connection closed by server")
        buf += chunk
    return bytes(buf)


# --------------------------------------------------------------------------------------- Kafka
class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        if self.pos + size > len(self.data):
            raise NotReady("truncated response")
        values = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += size
        return values[0] if len(values) == 1 else values

    def string(self, nullable: bool = False) -> str | None:
        length = self.take(">h")
        if length < 0:
            if nullable:
                return None
            raise NotReady("unexpected null string")
        raw = self.data[self.pos : self.pos + length]
        self.pos += length
        return raw.decode("utf-8", "replace")


def _kafka_request(sock: socket.socket, api_key: int, version: int, corr: int, body: bytes) -> _Reader:
    client_id = b"fanout-wait-ready"
    # Request header v1: api_key, api_version, correlation_id, client_id (nullable string).
    header = struct.pack(">hhih", api_key, version, corr, len(client_id)) + client_id
    payload = header + body
    sock.sendall(struct.pack(">i", len(payload)) + payload)
    (size,) = struct.unpack(">i", _recv_exact(sock, 4))
    reader = _Reader(_recv_exact(sock, size))
    got_corr = reader.take(">i")  # response header v0: correlation_id
    if got_corr != corr:
        raise NotReady(f"correlation id mismatch ({got_corr} != {corr})")
    return reader


def check_kafka(host: str, port: int, timeout: float = 5.0, nodes: int = 1) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        # ApiVersions (18) v0: empty body.
        r = _kafka_request(sock, 18, 0, 1, b"")
        error = r.take(">h")
        if error != 0:
            raise NotReady(f"ApiVersions error code {error}")
        n_apis = r.take(">i")
        # Metadata (3) v1: topics = empty array (no topics, just brokers + controller).
        r = _kafka_request(sock, 3, 1, 2, struct.pack(">i", 0))
        n_brokers = r.take(">i")
        brokers = []
        for _ in range(n_brokers):
            node_id = r.take(">i")
            bhost = r.string()
            bport = r.take(">i")
            r.string(nullable=True)  # rack
            brokers.append(f"{node_id}@{bhost}:{bport}")
        controller = r.take(">i")
        if len(brokers) < nodes:
            raise NotReady(f"metadata lists {len(brokers)} of {nodes} broker(s) yet")
        if controller < 0:
            raise NotReady("metadata has no controller yet")
        return f"apis={n_apis} brokers={','.join(brokers)} controller={controller}"


# ----------------------------------------------------------------------------------- Cassandra
_CQL_VERSION = 0x04
_OP_ERROR, _OP_STARTUP, _OP_READY, _OP_AUTHENTICATE = 0x00, 0x01, 0x02, 0x03
_OP_OPTIONS, _OP_SUPPORTED, _OP_QUERY, _OP_RESULT = 0x05, 0x06, 0x07, 0x08


def _cql_string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack(">H", len(raw)) + raw


def _cql_long_string(s: str) -> bytes:
    raw = s.encode("utf-8")
    return struct.pack(">i", len(raw)) + raw


def _cql_frame(sock: socket.socket, stream: int, opcode: int, body: bytes) -> tuple[int, _Reader]:
    sock.sendall(struct.pack(">BBhBi", _CQL_VERSION, 0, stream, opcode, len(body)) + body)
    version, _flags, got_stream, got_op, length = struct.unpack(">BBhBi", _recv_exact(sock, 9))
    if version & 0x7F != _CQL_VERSION:
        raise NotReady(f"unexpected protocol version 0x{version:02x}")
    if got_stream != stream:
        raise NotReady(f"stream id mismatch ({got_stream} != {stream})")
    reader = _Reader(_recv_exact(sock, length))
    if got_op == _OP_ERROR:
        code = reader.take(">i")
        msg = reader.take(">H")
        text = reader.data[reader.pos : reader.pos + msg].decode("utf-8", "replace")
        raise NotReady(f"CQL error 0x{code:04x}: {text}")
    return got_op, reader


def _cql_query(sock: socket.socket, stream: int, cql: str) -> tuple[int, _Reader]:
    """Run ``cql`` at consistency ONE; return the number of rows and a reader at the first row."""
    # QUERY: <long string><consistency ONE=0x0001><flags byte 0>
    op, r = _cql_frame(sock, stream, _OP_QUERY, _cql_long_string(cql) + struct.pack(">HB", 1, 0))
    if op != _OP_RESULT:
        raise NotReady(f"QUERY answered opcode {op}")
    kind = r.take(">i")
    if kind != 2:  # Rows
        raise NotReady(f"QUERY result kind {kind}, expected rows")
    flags = r.take(">i")
    n_cols = r.take(">i")
    if flags & 0x0002:  # has_more_pages: paging state <bytes>
        n = r.take(">i")
        r.pos += max(n, 0)
    if flags & 0x0004:  # no_metadata
        raise NotReady("no column metadata in result")
    global_spec = flags & 0x0001
    if global_spec:
        r.string()
        r.string()
    for _ in range(n_cols):
        if not global_spec:
            r.string()
            r.string()
        r.string()  # column name
        type_id = r.take(">H")
        if type_id == 0x0000:  # custom type: class name
            r.string()
    return r.take(">i"), r


def check_cassandra(host: str, port: int, timeout: float = 5.0, nodes: int = 1) -> str:
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        op, _ = _cql_frame(sock, 1, _OP_OPTIONS, b"")
        if op != _OP_SUPPORTED:
            raise NotReady(f"OPTIONS answered opcode {op}")
        startup = struct.pack(">H", 1) + _cql_string("CQL_VERSION") + _cql_string("3.0.0")
        op, _ = _cql_frame(sock, 2, _OP_STARTUP, startup)
        if op == _OP_AUTHENTICATE:
            raise NotReady("server requires authentication")
        if op != _OP_READY:
            raise NotReady(f"STARTUP answered opcode {op}")
        n_rows, r = _cql_query(sock, 3, "SELECT release_version FROM system.local")
        if n_rows < 1:
            raise NotReady("system.local returned no row")
        n = r.take(">i")
        value = r.data[r.pos : r.pos + n].decode("utf-8", "replace") if n >= 0 else None
        detail = f"release_version={value}"
        if nodes > 1:
            peers, _ = _cql_query(sock, 4, "SELECT peer FROM system.peers")
            if peers < nodes - 1:
                raise NotReady(f"system.peers lists {peers} of the {nodes - 1} other node(s) yet")
            detail += f" peers={peers}"
        return detail


CHECKS = {"kafka": check_kafka, "cassandra": check_cassandra}


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie is dead, unless it is a JVM whose main thread exited while other threads run.
    try:
        with open(f"/proc/{pid}/status", encoding="utf-8") as fh:
            fields = dict(line.split(":", 1) for line in fh if ":" in line)
    except OSError:
        return True
    if fields.get("State", "").split()[:1] != ["Z"]:
        return True
    return int(fields.get("Threads", "1").strip() or 1) > 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("service", choices=sorted(CHECKS))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int)
    parser.add_argument("--nodes", type=int, default=1, help="nodes the cluster must show (default 1)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")
    parser.add_argument("--pid", type=int, help="give up early if this process dies")
    parser.add_argument("--since", type=float, help="epoch seconds the elapsed time is counted from")
    parser.add_argument("--once", action="store_true", help="probe once, do not wait")
    args = parser.parse_args(argv)

    port = args.port or DEFAULT_PORTS[args.service]
    check = CHECKS[args.service]
    start = args.since if args.since else time.time()
    deadline = time.monotonic() + (0 if args.once else args.timeout)
    last_error = "not probed"
    while True:
        try:
            detail = check(args.host, port, timeout=3.0 if args.once else 5.0, nodes=args.nodes)
        except (OSError, NotReady) as exc:
            last_error = f"{type(exc).__name__}: {exc}" if isinstance(exc, OSError) else str(exc)
        else:
            print(f"ready {time.time() - start:.1f} {detail}")
            return 0
        if args.pid is not None and not _pid_alive(args.pid):
            reason = f"process {args.pid} exited before it was ready ({last_error})"
            print(f"{args.service}: {reason}", file=sys.stderr)
            return 1
        if time.monotonic() >= deadline:
            how = "not answering" if args.once else f"not ready after {args.timeout:.0f}s"
            print(f"{args.service} on {args.host}:{port} {how} ({last_error})", file=sys.stderr)
            return 1
        time.sleep(0.5)


if __name__ == "__main__":
    sys.exit(main())
