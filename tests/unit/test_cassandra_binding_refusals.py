"""Rows serialized without a BoundStatement (``fanout.cassandra.binding``) are refused where
``PreparedStatement.bind`` refuses them: UNSET under protocol v3, UNSET in the routing key (a
review of e841a7a found both sent; neither is what fanout sends by default)."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, PreparedStatement

from fanout.cassandra.binding import RowBinder, add_rows

from .test_cassandra_binding import COLUMNS, prepared

FULL = ("timeline:1", 1, "a1", "u", "pin", "o", "t", "{}", 9)


def with_protocol(stmt: PreparedStatement, version: int) -> PreparedStatement:
    stmt.protocol_version = version
    return stmt


def batch_of(stmt: PreparedStatement, rows: list[tuple[Any, ...]]) -> BatchStatement:
    binder = RowBinder(stmt)
    return add_rows(BatchStatement(batch_type=BatchType.UNLOGGED), [binder.bind(r) for r in rows])


def test_unset_under_protocol_v3_is_refused_as_bind_refuses_it() -> None:
    """FANOUT_CASSANDRA_PROTOCOL_VERSION=3 (accepted by Settings): a lone row with a null target
    fails with the driver's ValueError, but the same row second in a batch is sent with UNSET,
    which a v3 node takes as null (measured on the Cassandra 5 node here: accepted, target and
    extra written as null cells, i.e. tombstones)."""
    stmt = with_protocol(prepared(COLUMNS, b"ins3"), 3)
    bare = ("timeline:1", 2, "a2", "u", "pin", "o", UNSET_VALUE, UNSET_VALUE, 9)
    with pytest.raises(ValueError, match="unsuitable protocol version"):
        stmt.bind(bare)
    with pytest.raises(ValueError, match="unsuitable protocol version"):
        batch_of(stmt, [FULL, bare])


def test_unset_in_the_routing_key_is_refused_as_bind_refuses_it() -> None:
    stmt = prepared(COLUMNS, b"ins")
    keyless = (UNSET_VALUE, 2, "a2", "u", "pin", "o", "t", "{}", 9)
    with pytest.raises(ValueError, match="routing key"):
        stmt.bind(keyless)
    with pytest.raises(ValueError, match="routing key"):
        batch_of(stmt, [FULL, keyless])
