"""Driver exceptions as ``StoreError``, with a ``retriable`` flag that says whether trying again can help."""

from __future__ import annotations

from ..errors import StoreError


def is_retriable(exc: BaseException) -> bool:
    """Timeouts, unavailable replicas, overload and lost connections pass; bad requests do not."""
    from cassandra import OperationTimedOut, RequestExecutionException
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ConnectionException
    from cassandra.protocol import RequestExecutionException as ExecutionErrorMessage

    # RequestExecutionException: Unavailable, Read/WriteTimeout, Read/WriteFailure; the protocol's
    # messages of that family (a class of their own: Overloaded, IsBootstrapping, TruncateError,
    # which the driver normally retries on another host). Validation errors (InvalidRequest,
    # Unauthorized, syntax) will fail the same way again, and so may a ServerError.
    return isinstance(
        exc,
        RequestExecutionException | ExecutionErrorMessage | OperationTimedOut | NoHostAvailable
        | ConnectionException | OSError,
    )


#: What the node says of a table, keyspace or column that is not there (``fanout migrate`` makes them).
_MISSING_SCHEMA = ("unconfigured table", "does not exist", "Undefined column", "Undefined name")


def store_error(exc: BaseException, what: str) -> StoreError:
    """The ``StoreError`` to raise (``from exc``) when the driver failed doing ``what``."""
    retriable = is_retriable(exc)
    text = str(exc)
    missing = any(words in text for words in _MISSING_SCHEMA)
    hint = " (is the schema there? run `fanout migrate`)" if missing and not retriable else ""
    return StoreError(f"Cassandra {what} failed: {type(exc).__name__}: {exc}{hint}", retriable=retriable)


def closed_error() -> StoreError:
    """What every request on a closed store raises."""
    return StoreError("the Cassandra store is closed", retriable=False)


def connect_retriable(exc: BaseException) -> bool:
    """Whether a failed connect may pass by itself (a node down, starting, overloaded, its auth
    tables unreadable), or will fail the same way until a setting changes: credentials refused, or
    a protocol version the nodes do not speak, by every host tried."""
    from cassandra.cluster import NoHostAvailable

    if isinstance(exc, NoHostAvailable):
        errors = exc.errors if isinstance(exc.errors, dict) else {}  # a list of hosts: pools failed
        causes = list(errors.values())
        return not causes or not all(_a_setting(cause) for cause in causes)
    return not _a_setting(exc)


def _a_setting(cause: BaseException) -> bool:
    """One host's connect failed for a setting, not for the node's state."""
    from cassandra import AuthenticationFailed, DriverException, OperationTimedOut

    text = str(cause)
    if isinstance(cause, AuthenticationFailed):  # also what a node answers when system_auth is unavailable
        return "Unable to perform authentication" not in text
    if isinstance(cause, DriverException) and not isinstance(cause, OperationTimedOut):
        return "protocol_version" in text or "protocol version below minimum" in text
    return False
