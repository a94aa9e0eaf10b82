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


def store_error(exc: BaseException, what: str) -> StoreError:
    """The ``StoreError`` to raise (``from exc``) when the driver failed doing ``what``."""
    retriable = is_retriable(exc)
    hint = "" if retriable else " (is the schema there? run `fanout migrate`)"
    return StoreError(f"Cassandra {what} failed: {type(exc).__name__}: {exc}{hint}", retriable=retriable)


def closed_error() -> StoreError:
    """What every request on a closed store raises."""
    return StoreError("the Cassandra store is closed", retriable=False)


def connect_retriable(exc: BaseException) -> bool:
    """Whether a failed connect may pass by itself (a node down, starting or overloaded), or will
    fail the same way until a setting changes: bad credentials, a protocol version the nodes do
    not speak, TLS refused, on every host tried."""
    import ssl

    from cassandra import AuthenticationFailed, DriverException, OperationTimedOut
    from cassandra.cluster import NoHostAvailable
    from cassandra.connection import ProtocolVersionUnsupported

    settled = (AuthenticationFailed, ProtocolVersionUnsupported, ssl.SSLError)
    if isinstance(exc, NoHostAvailable):
        causes = list(getattr(exc, "errors", {}).values())
        return not causes or not all(isinstance(cause, settled) for cause in causes)
    if isinstance(exc, DriverException) and not isinstance(exc, OperationTimedOut):
        return "protocol_version" not in str(exc)  # "... explicitly set client protocol_version N"
    return not isinstance(exc, settled)
