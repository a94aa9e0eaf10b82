"""Raw timeline writes with no fanout code in the way: the rows, the strategies, the client processes.

The rows are the workload's planned rows: for every activity of a pass, one row per follower feed
(``timeline:<user>``) and one in the author's own feed (``user:<actor>``), the rows the pipeline
writes for the same pass, into fanout's own ``timeline`` table (its DDL).

A strategy is how rows become requests:

* ``single``: one prepared INSERT per row;
* ``partition``: one UNLOGGED batch per feed partition (at most ``BATCH_MAX_STATEMENTS`` rows /
  ``BATCH_MAX_BYTES`` of values: fanout's ``partition_batch`` write mode), a lone row alone;
* ``replica``: rows grouped by replica set (the driver's token map; on one node every row shares
  it), sorted by feed so each partition's rows sit together, cut into UNLOGGED batches of
  ``rows`` rows (multi-partition batches; over ``batch_size_warn_threshold`` each logs a WARN).
  With a ``window``, rows are grouped only within each run of ``window`` consecutive rows of the
  pass (pass order: activity by activity), as a writer can group only the rows of one batch.

Client processes (``cases/case1_raw_writer.py`` with cassandra-driver, ``cases/case1_native_writer.py``
with acsylla, a native-core driver) serve ``RawWriters``: one JSON command per stdin line::

    {"users": U, "activities": A, "t0_us": T, "run": R, "depth": D, "part": i, "parts": n, "limit": L,
     "strategy": {"kind": ..., "rows": B, "in_flight": C}}

they build the requests of their share of the rows and answer ``{"prepared": rows, "requests": k,
"bytes": b}``, wait for ``go`` (sent to every process at once), write, and answer ``{"start": ...,
"end": ..., "rows": ..., "requests": ..., "cpu_s": ...}`` (epoch seconds; CPU of the whole process).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

from fanout.cassandra.binding import add_rows, binds_rows

from .context import ROOT
from .processes import child_env, cpu_seconds
from .workload import Workload, activity_fields, standard, user_id

INSERT = ("INSERT INTO {ks}.timeline (feed, ts, activity_id, actor, verb, object, target) "
          "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?")
Row = tuple[str, int, str, str, str, str, str, int]  # INSERT's values (the last one: the write timestamp)
PARTITION_MAX_ROWS = 100  # fanout.cassandra's BATCH_MAX_STATEMENTS and BATCH_MAX_BYTES (partition_batch)
PARTITION_MAX_BYTES = 16 * 1024
NATIVE_PROTOCOL = 4  # acsylla (the C/C++ driver): its newest non-beta protocol version


@dataclass(frozen=True)
class Strategy:
    kind: str  # "single" | "partition" | "replica"
    rows: int = 1  # rows per multi-partition batch (replica)
    in_flight: int = 128  # requests in flight per client process
    window: int = 0  # replica: group only within runs of this many consecutive rows (0: the whole pass)

    @property
    def name(self) -> str:
        what = {"single": "single-row inserts", "partition": "one unlogged batch per feed partition",
                "replica": f"{self.rows}-row unlogged batches per replica set"}[self.kind]
        within = f", grouped within {self.window:,}-row windows" if self.window else ""
        return f"{what}{within}, {self.in_flight} in flight"

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def timeline_rows(wl: Workload, run: int, part: int = 0, parts: int = 1, limit: int = 0) -> list[Row]:
    """The timeline rows of pass ``run`` of ``wl``; with ``parts`` > 1 only the feeds that hash to
    ``part`` (each client process owns a share of the feeds); at most ``limit`` rows when given."""
    rows = []
    for act in wl.activities:
        f = activity_fields(act, run)
        feeds = [f"timeline:{user_id(u)}" for u in wl.graph.followers.get(act.actor, [])]
        feeds.append(f"user:{f['actor']}")
        for feed in feeds:
            if parts > 1 and zlib.crc32(feed.encode()) % parts != part:
                continue
            rows.append((feed, f["ts_us"], f["id"], f["actor"], f["verb"], f["object"], f["target"], f["ts_us"]))
    return rows[:limit] if limit else rows


def requests_of(insert: Any, groups: Iterable[list[Row]]) -> Iterator[tuple[Any, Any]]:
    """``(statement, values)`` per group for ``execute_concurrent``: a lone row a plain insert,
    more an idempotent UNLOGGED batch, its rows bound as fanout's store binds them
    (``fanout.cassandra.binding``: the rows after the first without a ``BoundStatement`` each)."""
    from cassandra.query import BatchStatement, BatchType

    binder = binds_rows(insert)
    for group in groups:
        if len(group) == 1:
            yield insert, group[0]
            continue
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        batch.is_idempotent = True
        yield add_rows(batch, [binder.bind(row) for row in group]), None


def value_bytes(row: Row) -> int:
    """A row's values as fanout's store counts them against its batch byte cap: text plus 48 bytes."""
    feed, _ts, activity_id, actor, verb, obj, target, _write_ts = row
    return 48 + len(feed) + len(activity_id) + len(actor) + len(verb) + len(obj) + len(target)


def request_groups(strategy: Strategy, rows: Sequence[Row], replicas: Callable[[str], Any] | None = None
                   ) -> list[list[Row]]:
    """The rows of each request of ``strategy`` (a group of one row is a plain statement).
    ``replicas(feed)`` names a feed's replica set (default: one node, one set)."""
    if strategy.kind == "single":
        return [[row] for row in rows]
    if strategy.window:
        whole = replace(strategy, window=0)
        return [group for start in range(0, len(rows), strategy.window)
                for group in request_groups(whole, rows[start : start + strategy.window], replicas)]
    by_feed: dict[str, list[Row]] = {}
    for row in rows:
        by_feed.setdefault(row[0], []).append(row)
    if strategy.kind == "partition":
        out: list[list[Row]] = []
        for feed_rows in by_feed.values():
            group: list[Row] = []
            size = 0
            for row in feed_rows:
                cost = value_bytes(row)
                if group and (size + cost > PARTITION_MAX_BYTES or len(group) >= PARTITION_MAX_ROWS):
                    out.append(group)
                    group, size = [], 0
                group.append(row)
                size += cost
            out.append(group)
        return out
    if strategy.kind != "replica":
        raise ValueError(f"unknown strategy {strategy.kind!r}")
    by_replicas: dict[Any, list[Row]] = {}
    for feed, feed_rows in by_feed.items():  # a feed's rows stay together, in their order
        by_replicas.setdefault(replicas(feed) if replicas else None, []).extend(feed_rows)
    out = []
    for same in by_replicas.values():
        out += [same[i : i + strategy.rows] for i in range(0, len(same), strategy.rows)]
    return out


class Workloads:
    """Workloads rebuilt from a command's sizes (deterministic), kept for the next command."""

    def __init__(self) -> None:
        self._built: dict[tuple[int, int, int], Workload] = {}

    def rows(self, cmd: dict[str, Any]) -> list[Row]:
        key = (cmd["users"], cmd["activities"], cmd["t0_us"])
        if key not in self._built:
            self._built[key] = standard(cmd["users"], cmd["activities"], t0_us=cmd["t0_us"])
        rows = []
        for run in range(cmd["run"], cmd["run"] + cmd.get("depth", 1)):  # depth passes: rows per feed
            rows += timeline_rows(self._built[key], run, cmd["part"], cmd["parts"])
        limit = cmd.get("limit", 0)
        return rows[:limit] if limit else rows


def serve(prepare: Callable[[Strategy, list[Row]], Any], write: Callable[[Any, Strategy], int]) -> None:
    """A client process's loop: read a command, ``prepare(strategy, rows)`` its requests (untimed),
    answer, wait for ``go``, ``write(prepared, strategy)`` (returns the requests sent), answer."""
    workloads = Workloads()
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        strategy = Strategy(**cmd["strategy"])
        rows = workloads.rows(cmd)
        prepared = prepare(strategy, rows)
        print(json.dumps({"prepared": len(rows), "bytes": sum(value_bytes(r) for r in rows)}), flush=True)
        if sys.stdin.readline().strip() != "go":  # every process starts on the same signal
            break
        cpu0, start = time.process_time(), time.time()
        requests = write(prepared, strategy)
        end, cpu1 = time.time(), time.process_time()
        print(json.dumps({"start": start, "end": end, "rows": len(rows), "requests": requests,
                          "cpu_s": cpu1 - cpu0}), flush=True)


@dataclass
class RawRun:
    """One pass written by the client processes together."""

    rows: int
    requests: int
    seconds: float
    client_cpu_s: float
    server_cpu_s: float  # the Cassandra JVM's CPU over the same span (all of it: only valid on a quiet node)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0

    @property
    def client_us_per_row(self) -> float:
        return self.client_cpu_s / self.rows * 1e6 if self.rows else 0.0

    @property
    def server_us_per_row(self) -> float:
        return self.server_cpu_s / self.rows * 1e6 if self.rows else 0.0


class RawWriters:
    """``parts`` persistent client processes running ``module`` (``benchmarks.cases.<writer>``)."""

    def __init__(self, module: str, args: Sequence[str], parts: int, server_pid: int | None) -> None:
        self.module = module
        self.args = list(args)
        self.parts = parts
        self.server_pid = server_pid
        self.procs: list[asyncio.subprocess.Process] = []

    async def __aenter__(self) -> RawWriters:
        for _ in range(self.parts):
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", self.module, *self.args, cwd=ROOT, env=child_env(),
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
            self.procs.append(proc)
        for proc in self.procs:
            await self._answer(proc, 120)
        return self

    async def _answer(self, proc: asyncio.subprocess.Process, limit_s: float) -> dict[str, Any]:
        assert proc.stdout is not None  # started with stdout=PIPE
        line = await asyncio.wait_for(proc.stdout.readline(), limit_s)
        if not line:
            raise RuntimeError(f"{self.module} (pid {proc.pid}) exited with code {await proc.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    @staticmethod
    async def _tell(procs: list[asyncio.subprocess.Process], lines: list[bytes]) -> None:
        for proc, line in zip(procs, lines, strict=True):
            assert proc.stdin is not None  # started with stdin=PIPE
            proc.stdin.write(line)
        await asyncio.gather(*(proc.stdin.drain() for proc in procs if proc.stdin is not None))

    async def run(self, wl: Workload, t0_us: int, strategy: Strategy, *, run: int, parts: int = 0,
                  limit: int = 0, depth: int = 1) -> RawRun:
        """Pass ``run`` of ``wl`` written by ``parts`` processes (default all) together; with ``depth``
        > 1 the rows of passes ``run .. run + depth - 1`` at once (that many rows per feed)."""
        parts = parts or self.parts
        procs = self.procs[:parts]
        commands = []
        for i in range(parts):
            cmd = {"users": wl.graph.users, "activities": len(wl.activities), "t0_us": t0_us, "run": run,
                   "part": i, "parts": parts, "limit": limit // parts if limit else 0, "depth": depth,
                   "strategy": strategy.to_json()}
            commands.append((json.dumps(cmd) + "\n").encode())
        await self._tell(procs, commands)
        for proc in procs:
            await self._answer(proc, 300)
        server0 = cpu_seconds(self.server_pid) if self.server_pid else 0.0
        await self._tell(procs, [b"go\n"] * parts)
        done = [await self._answer(proc, 900) for proc in procs]
        server1 = cpu_seconds(self.server_pid) if self.server_pid else 0.0
        return RawRun(
            rows=sum(d["rows"] for d in done), requests=sum(d["requests"] for d in done),
            seconds=max(d["end"] for d in done) - min(d["start"] for d in done),
            client_cpu_s=sum(d["cpu_s"] for d in done), server_cpu_s=server1 - server0,
        )

    async def __aexit__(self, *exc: object) -> None:
        for proc in self.procs:
            if proc.returncode is None and proc.stdin is not None:
                proc.stdin.close()
        for proc in self.procs:
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
