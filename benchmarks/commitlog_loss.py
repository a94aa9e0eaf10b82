"""Commit log loss: how many *acknowledged* writes a killed Cassandra node gives back after a restart.

Writes numbered rows (32 in flight, cassandra-driver) into a scratch keyspace of the one-node stack
that ``make up`` started, sends the node SIGKILL (its pid from ``.local/cassandra/pid``; with
``--signal TERM`` a stop instead) while the writes go on, waits until it is gone, restarts it
(``benchmarks.harness.stack.FreshStack``: ``scripts/services.sh``, so ``FANOUT_CASSANDRA_COMMITLOG``
and the other server settings apply), reads every row back and prints, per round: rows
acknowledged, acknowledged rows missing, and how long before the signal those were acknowledged.
The keyspace is dropped at the end. It kills this checkout's node: a node listening on the port
that this checkout did not start is refused before anything is signalled.

Run: ``.venv/bin/python -m benchmarks.commitlog_loss [--rounds 3] [--seconds 3] [--signal KILL]``;
compare ``FANOUT_CASSANDRA_COMMITLOG=periodic`` (the default) and ``group`` (stop the node first:
the setting is written when it starts).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path

from cassandra.cluster import Cluster, Session
from cassandra.query import SimpleStatement

from benchmarks.harness.context import ROOT
from benchmarks.harness.processes import listening_pid
from benchmarks.harness.stack import SERVICES, FreshStack, recorded_pid

HOST, PORT = SERVICES["cassandra"]
KEYSPACE = "fanout_commitlog_probe"
IN_FLIGHT = 32


def connect() -> tuple[Cluster, Session]:
    cluster = Cluster([HOST], port=PORT, protocol_version=5)
    return cluster, cluster.connect()


class Writer:
    """Numbered inserts, ``IN_FLIGHT`` at once, each acknowledgement timed (driver callbacks)."""

    def __init__(self, session: Session) -> None:
        self.insert = session.prepare(f"INSERT INTO {KEYSPACE}.t (k, v) VALUES (?, ?)")
        self.session = session
        self.acked: dict[int, float] = {}
        self.slots = threading.Semaphore(IN_FLIGHT)
        self.stop = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stop.is_set():
            if not self.slots.acquire(timeout=0.2):
                continue
            future = self.session.execute_async(self.insert, (n, "x" * 64))
            future.add_callbacks(self._ok, self._failed, callback_args=(n,))
            n += 1

    def _ok(self, _rows: object, n: int) -> None:
        self.acked[n] = time.monotonic()
        self.slots.release()

    def _failed(self, _exc: BaseException) -> None:
        self.slots.release()


def one_round(stack: FreshStack, pid: int, seconds: float, sig: signal.Signals) -> tuple[int, int, float, float]:
    """(acknowledged, acknowledged but lost, oldest and newest loss's age at the kill in ms)."""
    cluster, session = connect()
    session.execute(f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
                    "{'class': 'SimpleStrategy', 'replication_factor': 1}")
    session.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.t")
    session.execute(f"CREATE TABLE {KEYSPACE}.t (k int PRIMARY KEY, v text)")
    writer = Writer(session)
    thread = threading.Thread(target=writer.run, daemon=True)
    thread.start()
    time.sleep(seconds)
    killed = time.monotonic()
    os.kill(pid, sig)
    while Path(f"/proc/{pid}").exists():
        time.sleep(0.1)
    writer.stop.set()
    thread.join()
    cluster.shutdown()
    acked = dict(writer.acked)
    print(f"  {sig.name} to pid {pid} after {len(acked):,} acknowledged rows, gone after "
          f"{time.monotonic() - killed:.1f} s; restarting it", flush=True)
    stack.restart_node("cassandra", {})
    cluster, session = connect()
    have = {row.k for row in session.execute(SimpleStatement(f"SELECT k FROM {KEYSPACE}.t", fetch_size=5000))}
    session.execute(f"DROP KEYSPACE {KEYSPACE}")
    cluster.shutdown()
    lost = [killed - at for k, at in acked.items() if k not in have]
    if not lost:
        return len(acked), 0, 0.0, 0.0
    return len(acked), len(lost), max(lost) * 1000, min(lost) * 1000


def owned_node() -> int:
    """The pid of this checkout's node, listening on its port; exits with one line otherwise."""
    pid, listening = recorded_pid(ROOT, "cassandra"), listening_pid(PORT)
    if pid is None or listening != pid:
        sys.exit(f"commitlog_loss kills this checkout's Cassandra node, but {HOST}:{PORT} is "
                 + ("not answering: run `make up` first" if listening is None else
                    f"served by pid {listening}, not this checkout's ({pid}): run it where the node is yours"))
    return pid


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="writing before the kill")
    parser.add_argument("--signal", choices=["KILL", "TERM"], default="KILL",
                        help="KILL (a crash, the default) or TERM (a stop: the node drains first)")
    args = parser.parse_args()
    if args.rounds < 1 or args.seconds <= 0:
        parser.error("--rounds must be >= 1 and --seconds > 0")
    sig = signal.Signals[f"SIG{args.signal}"]
    mode = os.environ.get("FANOUT_CASSANDRA_COMMITLOG", "periodic")
    print(f"commit log mode {mode}: {args.rounds} round(s), {sig.name} after {args.seconds:.1f} s of writes")
    stack = FreshStack()
    for n in range(args.rounds):
        acked, lost, oldest, newest = one_round(stack, owned_node(), args.seconds, sig)
        ages = (f", acknowledged between {newest:.0f} and {oldest:.0f} ms before the signal (negative: after it, "
                "while the node went down)" if lost else "")
        print(f"round {n + 1}: {acked:,} acknowledged, {lost:,} of them lost ({lost / acked:.2%}){ages}", flush=True)


if __name__ == "__main__":
    main()
