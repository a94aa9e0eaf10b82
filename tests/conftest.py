"""Fixtures shared by every test: ``settings``, ``unique_name`` and ``store``.

``store`` is parametrised over both backends, so a test that takes it runs once on the
in-memory twin and once on the real Cassandra node (``store[cassandra]``, marked
``integration``). The Cassandra store is one connection and one throw-away keyspace per test
session (creating a keyspace and its tables costs about 1.5 s; TRUNCATE of five tables about
1 s, so neither is done per test): tests isolate themselves with ``unique_name`` ids for users,
feeds and activities. The keyspace is dropped at the end of the session.

When Cassandra is not reachable, the Cassandra-param tests FAIL (they never skip): start it
with ``make up``.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings as hypothesis_settings

from fanout import MemoryStore, Settings, StoreError

# No per-example deadline: hypothesis' default (200 ms an example) is a timing assertion, and on a
# loaded 2-core CI box an example of test_times took 708 ms. Speed lives in benchmarks/.
hypothesis_settings.register_profile("fanout", deadline=None)
hypothesis_settings.load_profile("fanout")

_CHAOS_DIR = Path(__file__).parent / "chaos"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The chaos suite restarts the servers: it runs only when asked for (``make chaos``, the slice
    in ``make test``, ``-m chaos`` or a path inside tests/chaos), never as part of a plain run."""
    if "chaos" in (config.option.markexpr or ""):
        return
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == _CHAOS_DIR or _CHAOS_DIR in path.parents:
            return
    chaos = [item for item in items if item.get_closest_marker("chaos")]
    if chaos:
        config.hook.pytest_deselected(items=chaos)
        items[:] = [item for item in items if not item.get_closest_marker("chaos")]


@pytest.fixture
def settings() -> Settings:
    """The defaults (no environment): tests change fields with ``settings.replace(...)``."""
    return Settings()


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Return a factory: unique_name("feed") -> "feed_<uuid4 hex>" (valid Kafka and CQL name)."""

    def make(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex}"

    return make


def _cassandra_settings() -> Settings:
    # only the connection comes from FANOUT_CASSANDRA_* variables; behaviour stays default
    env = Settings.from_env()
    return Settings(
        cassandra_hosts=env.cassandra_hosts,
        cassandra_port=env.cassandra_port,
        cassandra_username=env.cassandra_username,
        cassandra_password=env.cassandra_password,
    )


@pytest.fixture(scope="session")
async def cassandra_store() -> AsyncIterator[Any]:
    """One ``CassandraStore`` on a fresh keyspace for the whole test session."""
    from fanout.cassandra import CassandraStore

    settings = _cassandra_settings()
    where = f"{','.join(settings.cassandra_hosts)}:{settings.cassandra_port}"
    problem = ""
    try:
        store = await CassandraStore.connect(settings, keyspace=f"fanout_test_{uuid.uuid4().hex[:16]}")
    except StoreError as exc:
        problem = str(exc.__cause__ or exc)
    if problem:  # outside the except block: no chained traceback, just the message
        pytest.fail(f"Cassandra not reachable on {where}: run `make up`\n({problem})", pytrace=False)
    try:
        await store.migrate()
        yield store
    finally:
        try:
            await store.drop_keyspace()
        finally:
            await store.close()


@pytest.fixture(params=["memory", pytest.param("cassandra", marks=pytest.mark.integration)])
def store(request: pytest.FixtureRequest) -> Any:
    """A ``Store``: a fresh ``MemoryStore``, or the session's ``CassandraStore``.

    Do not close it (``Fanout.close`` closes its store): the Cassandra one is shared.
    """
    if request.param == "memory":
        return MemoryStore()
    return request.getfixturevalue("cassandra_store")
