"""The Cassandra store (see ``store``)."""

from .store import (
    BATCH_MAX_BYTES,
    BATCH_MAX_STATEMENTS,
    TRIM_COUNT_PAGE,
    WRITE_MODES,
    CassandraStore,
    migrate,
)
from .store import (
    _store_error as _store_error,  # tests/contract import it from here
)

__all__ = ["BATCH_MAX_BYTES", "BATCH_MAX_STATEMENTS", "TRIM_COUNT_PAGE", "WRITE_MODES", "CassandraStore", "migrate"]
