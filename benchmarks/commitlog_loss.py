"""Commit log loss: how many *acknowledged* writes a killed Cassandra node gives back after a restart.

Writes numbered rows (32 in flight, cassandra-driver) into a scratch keyspace of the one-node stack
that ``make up`` started, sends the node SIGKILL (its pid from ``.local/cassandra/pid``; with
``--signal TERM`` a stop instead) while the writes go on, waits until it is gone, restarts it with
``scripts/services.sh up cassandra`` (so ``FANOUT_CASSANDRA_COMMITLOG`` and the other server
settings apply), reads every row back and prints, per round: rows acknowledged, acknowledged rows
missing, and how long before the signal those were acknowledged. The keyspace is dropped at the
end. It kills the node of this checkout's stack: run it only where nothing else uses it.

Run: ``.venv/bin/python benchmarks/commitlog_loss.py [--rounds 3] [--seconds 3] [--signal KILL]``;
compare ``FANOUT_CASSANDRA_COMMITLOG=periodic`` (the default) and ``group`` (stop the node first:
the setting is written when it starts).
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import threading
import time
from pathlib import Path

from cassandra.cluster import Cluster, Session
from cassandra.query import SimpleStatement

ROOT = Path(__file__).resolve().parent.parent
KEYSPACE = "fanout_commitlog_probe"
IN_FLIGHT = 32


def connect() -> tuple[Cluster, Session]:
    cluster = Cluster(["127.0.0.1"], protocol_version=5)
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


def one_round(seconds: float, sig: signal.Signals) -> tuple[int, int, float, float]:
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
    pid = int((ROOT / ".local" / "cassandra" / "pid").read_text())
    killed = time.monotonic()
    os.kill(pid, sig)
    while _alive(pid):
        time.sleep(0.1)
    writer.stop.set()
    thread.join()
    cluster.shutdown()
    acked = dict(writer.acked)
    print(f"  {sig.name} to pid {pid} after {len(acked):,} acknowledged rows, gone after "
          f"{time.monotonic() - killed:.1f} s; restarting it", flush=True)
    subprocess.run(["bash", str(ROOT / "scripts" / "services.sh"), "up", "cassandra"], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL)
    cluster, session = connect()
    have = {row.k for row in session.execute(SimpleStatement(f"SELECT k FROM {KEYSPACE}.t", fetch_size=5000))}
    session.execute(f"DROP KEYSPACE {KEYSPACE}")
    cluster.shutdown()
    lost = [killed - at for k, at in acked.items() if k not in have]
    if not lost:
        return len(acked), 0, 0.0, 0.0
    return len(acked), len(lost), max(lost) * 1000, min(lost) * 1000


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=3.0, help="writing before the kill")
    parser.add_argument("--signal", choices=["KILL", "TERM"], default="KILL",
                        help="KILL (a crash, the default) or TERM (a stop: the node drains first)")
    args = parser.parse_args()
    sig = signal.Signals[f"SIG{args.signal}"]
    mode = os.environ.get("FANOUT_CASSANDRA_COMMITLOG", "periodic")
    print(f"commit log mode {mode}: {args.rounds} round(s), {sig.name} after {args.seconds:.1f} s of writes")
    for n in range(args.rounds):
        acked, lost, oldest, newest = one_round(args.seconds, sig)
        ages = f", acknowledged {newest:.0f}-{oldest:.0f} ms before the kill" if lost else ""
        print(f"round {n + 1}: {acked:,} acknowledged, {lost:,} of them lost ({lost / acked:.2%}){ages}", flush=True)


if __name__ == "__main__":
    main()
