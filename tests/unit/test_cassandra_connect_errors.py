"""A failed connect says whether it is an outage (retriable: ``fanout worker all`` waits it out,
exit 75) or a setting (credentials refused, a protocol version the nodes do not speak: exit 2, so
that a crash loop ends it), without a server; the errors are shaped as the driver raises them."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import AuthenticationFailed, DriverException, OperationTimedOut
from cassandra.cluster import NoHostAvailable

from fanout import Settings, StoreError
from fanout.cassandra import routing
from fanout.cassandra.errors import connect_retriable
from fanout.cassandra.store import CassandraStore

BAD_PASSWORD = AuthenticationFailed("Failed to authenticate: Bad credentials")
EXPLICIT_V5 = DriverException("ProtocolError returned from server while using explicitly set client protocol_version 5")


@pytest.mark.parametrize(("exc", "retriable"), [
    (NoHostAvailable("down", {"127.0.0.1:9042": ConnectionRefusedError(111, "refused")}), True),
    (NoHostAvailable("slow", {"127.0.0.1:9042": OperationTimedOut("errors=None")}), True),
    (NoHostAvailable("auth", {"127.0.0.1:9042": BAD_PASSWORD, "127.0.0.2:9042": BAD_PASSWORD}), False),
    (NoHostAvailable("one down, one refusing", {"a": BAD_PASSWORD, "b": ConnectionRefusedError(111, "x")}), True),
    (NoHostAvailable("auth tables down", {"a": AuthenticationFailed(
        'Failed to authenticate to a: Error from server: code=0100 [Bad credentials] message="Unable to perform '
        'authentication: Cannot achieve consistency level QUORUM"')}), True),
    (NoHostAvailable("v5 refused", {"a": EXPLICIT_V5, "b": EXPLICIT_V5}), False),
    (NoHostAvailable("v", {"a": DriverException("Cannot downgrade protocol version below minimum: 3")}), False),
    (NoHostAvailable("nothing said", {}), True),
    (NoHostAvailable("pools failed", ["127.0.0.1:9042"]), True),  # Session's: a list of hosts
    (EXPLICIT_V5, False),
    (OperationTimedOut("errors=None"), True),
    (OSError("unreachable"), True),
])
def test_a_failed_connect_is_an_outage_or_a_setting(exc: BaseException, retriable: bool) -> None:
    assert connect_retriable(exc) is retriable


class _Cluster:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc

    def connect(self) -> Any:
        raise self.exc

    def shutdown(self) -> None:
        pass


async def test_connect_raises_a_non_retriable_error_for_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    for exc, retriable, words in ((NoHostAvailable("auth", {"a": BAD_PASSWORD}), False, "refused the connection"),
                                  (NoHostAvailable("down", {"a": ConnectionRefusedError(111, "x")}), True,
                                   "not reachable")):
        monkeypatch.setattr(routing, "build_cluster", lambda *a, exc=exc, **k: _Cluster(exc))
        with pytest.raises(StoreError, match=words) as raised:
            await CassandraStore.connect(Settings())
        assert raised.value.retriable is retriable


@pytest.mark.parametrize(("message", "hint"), [
    ("unconfigured table timeline", True),
    ("Keyspace 'fanout' does not exist", True),
    ("Undefined column name to_feeds in table fanout.activities", True),
    ("ANY ConsistencyLevel is only supported for writes", False),
    ("Cannot add already existing table \"timeline\" to keyspace \"system\"", False),
])
def test_only_a_missing_schema_is_told_to_run_migrate(message: str, hint: bool) -> None:
    """A refused request named `fanout migrate` whatever it was, even on `fanout migrate` itself."""
    from cassandra import InvalidRequest

    from fanout.cassandra.errors import store_error

    error = store_error(InvalidRequest(f'Error from server: code=2200 [Invalid query] message="{message}"'), "read")
    assert not error.retriable
    assert ("fanout migrate" in str(error)) is hint
