"""A raw Cassandra writer process for the ceiling (case 1): no fanout code on the write path.

Started by ``case1_ceiling`` (``python -m benchmarks.cases.case1_raw_writer KEYSPACE``), one per
client process. It connects once with the driver exactly as ``CassandraStore`` does, then reads
JSON commands on stdin, one per line::

    {"users": U, "activities": A, "t0_us": T, "run": R, "part": i, "parts": n,
     "mode": "single" | "grouped", "concurrency": C, "limit": L}

regenerates the rows of that pass (its ``part``-th share of the feeds), answers ``{"prepared": n}``,
waits for a ``go`` line (sent to all processes at once, so they start together), writes them with
``cassandra.concurrent.execute_concurrent`` and answers ``{"start": ..., "end": ..., "rows": ...,
"requests": ...}`` (epoch seconds).

``grouped`` batches as fanout's ``partition_batch`` write mode does, with its own limits
(``fanout.cassandra.BATCH_MAX_STATEMENTS`` and ``BATCH_MAX_BYTES``).
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
import zlib
from typing import Any

from benchmarks.harness.stores import connect_store
from benchmarks.harness.workload import Workload, activity_fields, standard, user_id
from fanout import Settings
from fanout.cassandra import BATCH_MAX_BYTES, BATCH_MAX_STATEMENTS

INSERT = ("INSERT INTO {ks}.timeline (feed, ts, activity_id, actor, verb, object, target) "
          "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?")
Row = tuple[str, int, str, str, str, str, str, int]  # INSERT's values (the last one: the write timestamp)


def timeline_rows(wl: Workload, run: int, part: int = 0, parts: int = 1, limit: int = 0) -> list[Row]:
    """The timeline rows of one pass of ``wl`` (every follower feed and the author's own feed);
    with ``parts`` > 1 only the feeds that hash to ``part``; at most ``limit`` rows when given."""
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


def value_bytes(row: Row) -> int:
    """The size of a row's values as fanout's store counts it against ``BATCH_MAX_BYTES``: its
    text columns plus 48 bytes for the rest."""
    feed, _ts, activity_id, actor, verb, obj, target, _write_ts = row
    return 48 + len(feed) + len(activity_id) + len(actor) + len(verb) + len(obj) + len(target)


def grouped(insert: Any, rows: list[Row]) -> list[tuple[Any, Any]]:
    """One UNLOGGED batch per feed partition, split at fanout's ``BATCH_MAX_STATEMENTS`` rows or
    ``BATCH_MAX_BYTES`` of values; a feed's single row goes alone."""
    from cassandra.query import BatchStatement, BatchType

    by_feed: dict[str, list[Row]] = {}
    for row in rows:
        by_feed.setdefault(row[0], []).append(row)
    out: list[tuple[Any, Any]] = []
    for feed_rows in by_feed.values():
        if len(feed_rows) == 1:
            out.append((insert, feed_rows[0]))
            continue
        batch: Any = None
        size = 0
        for row in feed_rows:
            cost = value_bytes(row)
            if batch is not None and (size + cost > BATCH_MAX_BYTES or len(batch) >= BATCH_MAX_STATEMENTS):
                out.append((batch, None))
                batch = None
            if batch is None:
                batch, size = BatchStatement(batch_type=BatchType.UNLOGGED), 0
                batch.is_idempotent = True
            batch.add(insert, row)
            size += cost
        if batch is not None:
            out.append((batch, None))
    return out


def write(session: Any, requests: list[tuple[Any, Any]], concurrency: int) -> None:
    from cassandra.concurrent import execute_concurrent

    for result in execute_concurrent(session, requests, concurrency=concurrency, raise_on_first_error=True):
        if not result.success:
            raise RuntimeError(result.result_or_exc)


def main() -> int:
    keyspace = sys.argv[1]
    store = asyncio.run(connect_store(Settings.from_env(), keyspace, migrate=False))
    session = store.session
    insert = session.prepare(INSERT.format(ks=keyspace))
    insert.is_idempotent = True
    workloads: dict[tuple[int, int, int], Workload] = {}
    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        key = (cmd["users"], cmd["activities"], cmd["t0_us"])
        if key not in workloads:
            workloads[key] = standard(cmd["users"], cmd["activities"], t0_us=cmd["t0_us"])
        rows = timeline_rows(workloads[key], cmd["run"], cmd["part"], cmd["parts"], cmd.get("limit", 0))
        requests = grouped(insert, rows) if cmd["mode"] == "grouped" else [(insert, r) for r in rows]
        gc.collect()
        print(json.dumps({"prepared": len(rows)}), flush=True)
        if sys.stdin.readline().strip() != "go":  # every process starts on the same signal
            break
        start = time.time()
        write(session, requests, cmd["concurrency"])
        end = time.time()
        print(json.dumps({"start": start, "end": end, "rows": len(rows), "requests": len(requests)}), flush=True)
    asyncio.run(store.close())
    return 0


if __name__ == "__main__":
    sys.exit(main())
