"""Rows of a batch serialized by the driver's own column types, without a ``BoundStatement`` each.

``PreparedStatement.bind`` costs ~16 us of CPU a row on a 2-core box (measured with
cassandra-driver 3.29: a ``BoundStatement`` built per row, a ``ColDesc`` per value, the
column-encryption checks), a third of a writer's CPU. In an UNLOGGED batch only the first row's
``BoundStatement`` is needed (it gives the batch its routing key and keyspace); the others are
sent as (query id, values). ``RowBinder.bind`` keeps the values; ``add_rows`` binds the first
row the driver's way and serializes the rest with each column's ``serialize``, the call ``bind``
itself makes, so the bytes are the same (``tests/unit/test_cassandra_binding.py``). A row sent
alone is bound by the driver. A statement with a column-encryption policy, a row of the wrong
length or a value a serializer refuses goes through ``bind`` (which raises its usual error).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from typing import Any


class BoundRow:
    """A row for ``binder``'s statement: bound when sent (``real``), or serialized into a batch."""

    __slots__ = ("binder", "values")

    def __init__(self, binder: RowBinder, values: Sequence[Any]) -> None:
        self.binder = binder
        self.values = values

    def real(self) -> Any:
        """The driver's ``BoundStatement`` for the row."""
        return self.binder.prepared.bind(self.values)


class RowBinder:
    """Wraps a driver ``PreparedStatement``: ``bind`` returns a ``BoundRow`` (nothing serialized yet)."""

    def __init__(self, prepared: Any) -> None:
        from cassandra.query import UNSET_VALUE

        self.prepared = prepared
        self.query_id = prepared.query_id
        self._proto: int = prepared.protocol_version
        self._unset = UNSET_VALUE
        self._serializers: list[Callable[[Any, int], bytes]] = [m.type.serialize for m in prepared.column_metadata]
        self._key_indexes: tuple[int, ...] = tuple(prepared.routing_key_indexes or ())
        # protocol v3 has no UNSET (``bind`` refuses it there): every row through ``bind``
        self.fast = prepared.column_encryption_policy is None and self._proto >= 4

    def bind(self, values: Sequence[Any]) -> BoundRow:
        return BoundRow(self, values)

    def serialize(self, values: Sequence[Any]) -> list[Any] | None:
        """The row's values as ``bind`` sends them; None where only ``bind`` will do."""
        if not self.fast or len(values) != len(self._serializers):
            return None
        unset, proto = self._unset, self._proto
        if any(values[i] is unset for i in self._key_indexes):
            return None  # ``bind`` refuses an UNSET routing key with its own error
        try:
            return [value if value is None or value is unset else serialize(value, proto)
                    for serialize, value in zip(self._serializers, values, strict=True)]
        except (TypeError, ValueError, OverflowError, struct.error):
            return None


def binds_rows(statement: Any) -> Any:
    """``statement`` wrapped in a ``RowBinder`` when it is the driver's ``PreparedStatement``
    (test doubles stay as they are)."""
    from cassandra.query import PreparedStatement

    return RowBinder(statement) if isinstance(statement, PreparedStatement) else statement


def real(statement: Any) -> Any:
    """A statement to send alone: a ``BoundRow`` bound by the driver, anything else as it is."""
    return statement.real() if isinstance(statement, BoundRow) else statement


def add_rows(batch: Any, group: Sequence[Any]) -> Any:
    """Add the statements of ``group`` to ``batch``: ``BoundRow``s after the first serialized
    into it directly once the batch has its routing key (from the rows bound before, as
    ``BatchStatement.add`` sets it: the first with one); returns ``batch``."""
    for statement in group:
        if isinstance(statement, BoundRow) and batch.routing_key is not None:
            values = statement.binder.serialize(statement.values)
            if values is not None:
                batch._add_statement_and_params(True, statement.binder.query_id, values)
                continue
        batch.add(real(statement))
    return batch
