"""The pipeline's Cassandra store, opened as every agent (and ``worker all``'s start check) opens it."""

from __future__ import annotations

from fanout.settings import Settings
from fanout.store import Store

from .quietlogs import QuietDriverLogs


async def open_store(settings: Settings, *, write_mode: str | None = None) -> Store:
    """The pipeline's store: ``CassandraStore.connect(settings)``.

    ``settings.cassandra_write_mode`` defaults to ``replica_batch``: a batch of chunks becomes
    UNLOGGED batches of ~40 rows per replica set, each feed's rows together (one request per
    ~40 rows, not per row or per feed).
    """
    from fanout.cassandra import CassandraStore

    quiet = QuietDriverLogs()  # the node down: the driver's warnings on one line, not tracebacks
    quiet.install()
    try:
        store = await CassandraStore.connect(settings, write_mode=write_mode)
        try:
            await store.check_schema()  # before `fanout migrate`: refused now, not at the first event
        except BaseException:
            await store.close()
            raise
        return store
    finally:
        quiet.uninstall()
