"""``fanout.cassandra.binding``: a batch's rows serialized by the driver's own column types must
be byte for byte what ``PreparedStatement.bind`` sends, with the driver's real classes (no server:
the prepared statement is built from its column metadata)."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra.cqltypes import LongType, UTF8Type
from cassandra.protocol import ColumnMetadata
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, BoundStatement, PreparedStatement
from hypothesis import given
from hypothesis import strategies as st

from fanout import Activity, TimelineWrite
from fanout.cassandra.batching import replica_requests, row_deletes, timeline_requests
from fanout.cassandra.binding import BoundRow, RowBinder, add_rows, binds_rows

COLUMNS = [("feed", UTF8Type), ("ts", LongType), ("activity_id", UTF8Type), ("actor", UTF8Type), ("verb", UTF8Type),
           ("object", UTF8Type), ("target", UTF8Type), ("extra", UTF8Type), ("[timestamp]", LongType)]
DELETE_COLUMNS = [("[timestamp]", LongType), ("feed", UTF8Type), ("ts", LongType), ("activity_id", UTF8Type)]


def prepared(columns: list[tuple[str, Any]], query_id: bytes, policy: Any = None) -> PreparedStatement:
    meta = [ColumnMetadata("ks", "timeline", name, kind) for name, kind in columns]
    stmt = PreparedStatement(meta, query_id, [1] if columns[0][0] == "[timestamp]" else [0], "cql", "ks", 5,
                             [], b"rid", column_encryption_policy=policy)
    stmt.is_idempotent = True
    return stmt


INSERT, DELETE = prepared(COLUMNS, b"ins"), prepared(DELETE_COLUMNS, b"del")
text = st.text(max_size=30)
times = st.integers(min_value=-(2**63), max_value=2**63 - 1)


def batch_of(group: list[Any]) -> BatchStatement:
    return add_rows(BatchStatement(batch_type=BatchType.UNLOGGED), group)


def by_driver(stmt: PreparedStatement, rows: list[tuple[Any, ...]]) -> BatchStatement:
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for row in rows:
        batch.add(stmt.bind(row))
    return batch


@given(st.lists(st.tuples(text, times, text, text, text, text, st.one_of(st.just(UNSET_VALUE), text),
                          st.one_of(st.just(UNSET_VALUE), st.none(), text), times), min_size=1, max_size=12))
def test_a_batch_of_rows_holds_the_bytes_the_driver_binds(rows: list[tuple[Any, ...]]) -> None:
    binder = RowBinder(INSERT)
    ours, theirs = batch_of([binder.bind(r) for r in rows]), by_driver(INSERT, rows)
    assert ours._statements_and_parameters == theirs._statements_and_parameters
    assert (ours.routing_key, ours.keyspace) == (theirs.routing_key, theirs.keyspace)
    if rows[0][0]:  # routed by the first row (a row with an empty key sets nothing, in both)
        assert ours.routing_key == rows[0][0].encode()


def test_a_lone_row_is_the_drivers_bound_statement() -> None:
    row = ("timeline:1", 5, "a1", "u", "pin", "o", UNSET_VALUE, UNSET_VALUE, 9)
    bound = BoundRow(RowBinder(INSERT), row).real()
    assert isinstance(bound, BoundStatement) and bound.values == INSERT.bind(row).values


def test_what_only_bind_can_do_goes_through_bind() -> None:
    binder = RowBinder(INSERT)
    assert binder.serialize(("timeline:1", 5)) is None  # short: bind pads it with UNSET_VALUE
    assert binder.serialize(("timeline:1", "not a number", "a", "u", "v", "o", None, None, 1)) is None
    bad = ("timeline:1", 2**64, "a1", "u", "pin", "o", UNSET_VALUE, UNSET_VALUE, 9)
    with pytest.raises(TypeError, match="Received an argument of invalid type"):  # the driver's own error
        batch_of([binder.bind(("timeline:1", 1, "a0", "u", "pin", "o", None, None, 1)), binder.bind(bad)])
    assert not RowBinder(prepared(COLUMNS, b"enc", policy=object())).fast
    assert binds_rows("a test double") == "a test double"


def test_the_store_requests_carry_the_drivers_bytes() -> None:
    act = Activity(id="a1", actor="u1", verb="pin", object="pin:1", ts=1_001, target="b", extra={"k": 1})
    writes = [TimelineWrite(f"timeline:{n % 3}", act, 7 + n, remove=n % 4 == 3) for n in range(50)]
    insert, delete = binds_rows(INSERT), binds_rows(DELETE)
    for mode in ("replica_batch", "partition_batch", "concurrent"):
        ours = list(timeline_requests(mode, writes, insert=insert, delete=delete))
        theirs = list(timeline_requests(mode, writes, insert=INSERT, delete=DELETE))
        assert [_content(r) for r in ours] == [_content(r) for r in theirs] and ours
    got = list(replica_requests(writes, insert=insert, delete=delete, replicas=lambda feed: feed[-1]))
    want = list(replica_requests(writes, insert=INSERT, delete=DELETE, replicas=lambda feed: feed[-1]))
    assert [_content(r) for r in got] == [_content(r) for r in want]
    rows = [(1_000 + n, f"a{n}", 7_000 + n) for n in range(130)]
    assert ([_content(r) for r in row_deletes("timeline:7", rows, delete=delete)]
            == [_content(r) for r in row_deletes("timeline:7", rows, delete=DELETE)])


def _content(request: Any) -> Any:
    if isinstance(request, BatchStatement):
        return ("batch", request._statements_and_parameters, request.routing_key, request.is_idempotent)
    assert isinstance(request, BoundStatement)
    return ("bound", request.prepared_statement.query_id, request.values, request.routing_key)
