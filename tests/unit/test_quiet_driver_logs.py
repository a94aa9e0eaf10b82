"""cassandra-driver's warnings during an outage: one line each, each distinct one once a minute."""

from __future__ import annotations

import logging

import pytest

from fanout.agents.quietlogs import QuietDriverLogs


def _warn_with_traceback(logger: logging.Logger, host: str) -> None:
    try:
        raise ConnectionRefusedError(111, "Connection refused")
    except ConnectionRefusedError:
        logger.warning("[control connection] Error connecting to %s:", host, exc_info=True)


def test_driver_warnings_lose_their_traceback_and_repeat_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("cassandra.cluster")
    quiet = QuietDriverLogs()
    quiet.install()
    try:
        with caplog.at_level(logging.INFO, logger="cassandra"):
            for _ in range(50):
                _warn_with_traceback(logger, "127.0.0.1:9042")
            logger.info("an info line passes untouched")
    finally:
        quiet.uninstall()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and quiet.suppressed == 49
    assert warnings[0].exc_info is None
    assert warnings[0].getMessage() == ("[control connection] Error connecting to 127.0.0.1:9042: "
                                        "ConnectionRefusedError: [Errno 111] Connection refused")
    assert "Traceback" not in caplog.text
    assert any(r.getMessage() == "an info line passes untouched" for r in caplog.records)


def test_a_new_message_is_printed_and_the_filter_comes_off() -> None:
    logger = logging.getLogger("cassandra.pool")
    quiet = QuietDriverLogs(repeat_every=0.0)
    quiet.install()
    assert quiet in logger.filters
    record = logger.makeRecord("cassandra.pool", logging.ERROR, __file__, 1, "pool %s shut down", ("x",), None)
    assert quiet.filter(record) and quiet.filter(record)  # repeat_every 0: every repeat is printed
    quiet.uninstall()
    assert quiet not in logger.filters


async def test_a_worker_that_cannot_reach_cassandra_logs_no_driver_traceback(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """`fanout worker` with the node down: the driver's connection warnings while the store opens
    are one line each, like those during an outage (the CLI then prints its one-line error)."""
    from fanout import Settings, StoreError
    from fanout.agents import stores
    from fanout.cassandra import CassandraStore

    async def unreachable(settings: Settings, **_: object) -> None:
        _warn_with_traceback(logging.getLogger("cassandra.cluster"), "127.0.0.1:9042")
        raise StoreError("Cassandra not reachable on 127.0.0.1:9042", retriable=False)

    monkeypatch.setattr(CassandraStore, "connect", unreachable)
    with caplog.at_level(logging.INFO, logger="cassandra"), pytest.raises(StoreError):
        await stores.open_store(Settings())
    assert [r.exc_info for r in caplog.records] == [None]
    assert "Traceback" not in caplog.text
    assert logging.getLogger("cassandra.cluster").filters == []  # taken off again


def test_the_prepare_failure_the_store_raises_is_dropped_but_not_the_per_host_ones(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``Session.prepare`` logs "Error preparing query:" and raises: the store raises it again with
    what to do (one line, ``fanout migrate``). The per-host lines are never raised: they stay."""
    logger = logging.getLogger("cassandra.cluster")
    quiet = QuietDriverLogs()
    quiet.install()
    try:
        with caplog.at_level(logging.INFO, logger="cassandra"):
            logger.error("Error preparing query:")
            logger.error("Error preparing query for host %s:", "10.0.0.7:9042")
            logger.error("Error preparing query on all hosts:")
    finally:
        quiet.uninstall()
    assert [r.getMessage() for r in caplog.records] == [
        "Error preparing query for host 10.0.0.7:9042:", "Error preparing query on all hosts:"
    ]
