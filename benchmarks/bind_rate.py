"""Bind rate: client CPU per timeline row to bind a 40-row UNLOGGED batch, the driver's way
(``PreparedStatement.bind`` per row, then ``BatchStatement.add``) beside fanout's
(``fanout.cassandra.binding``: the first row bound, the others serialized by the driver's column
types), side by side in one run, interleaved. No server: the prepared statement is built from the
timeline insert's column metadata, as the driver builds it from the node's answer. Run:
``.venv/bin/python benchmarks/bind_rate.py [--rows 20000] [--runs 5]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

from cassandra.cqltypes import LongType, UTF8Type
from cassandra.protocol import ColumnMetadata
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from fanout.cassandra.batching import REPLICA_BATCH_ROWS
from fanout.cassandra.binding import RowBinder, add_rows

COLUMNS = [("feed", UTF8Type), ("ts", LongType), ("activity_id", UTF8Type), ("actor", UTF8Type), ("verb", UTF8Type),
           ("object", UTF8Type), ("target", UTF8Type), ("extra", UTF8Type), ("[timestamp]", LongType)]


def insert_statement() -> PreparedStatement:
    meta = [ColumnMetadata("fanout", "timeline", name, kind) for name, kind in COLUMNS]
    return PreparedStatement(meta, b"insert", [0], "INSERT ...", "fanout", 5, [], b"result")


def the_drivers(stmt: PreparedStatement, rows: list[tuple[Any, ...]]) -> None:
    for start in range(0, len(rows), REPLICA_BATCH_ROWS):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for row in rows[start : start + REPLICA_BATCH_ROWS]:
            batch.add(stmt.bind(row))


def fanouts(stmt: PreparedStatement, rows: list[tuple[Any, ...]]) -> None:
    binder = RowBinder(stmt)
    for start in range(0, len(rows), REPLICA_BATCH_ROWS):
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        add_rows(batch, [binder.bind(row) for row in rows[start : start + REPLICA_BATCH_ROWS]])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    stmt = insert_statement()
    t0 = 1_764_000_000_000_000
    rows = [(f"timeline:user{n}", t0 + n, f"{t0 + n}-{n:08x}", "user42", "pin", f"item:{n % 977}", UNSET_VALUE,
             UNSET_VALUE, t0 + n) for n in range(args.rows)]
    ways: dict[str, Callable[[PreparedStatement, list[tuple[Any, ...]]], None]] = {
        "the driver's bind per row": the_drivers, "fanout.cassandra.binding": fanouts}
    cpu: dict[str, list[float]] = {name: [] for name in ways}
    for _ in range(args.runs):
        for name, way in ways.items():
            start = time.process_time()
            way(stmt, rows)
            cpu[name].append((time.process_time() - start) / len(rows) * 1e6)
    medians = {name: statistics.median(values) for name, values in cpu.items()}
    base = medians["the driver's bind per row"]
    print("\n".join(f"{name:28} {medians[name]:5.1f} us of CPU per row ({REPLICA_BATCH_ROWS}-row batches; min-max "
                    f"{min(cpu[name]):.1f}-{max(cpu[name]):.1f}), {base / medians[name]:.2f}x the driver's rate"
                    for name in ways))

if __name__ == "__main__":
    main()
