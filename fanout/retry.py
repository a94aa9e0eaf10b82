"""The one retry helper: exponential backoff with jitter for errors that say they are retriable.

    result = await retry(partial(store.apply, writes), within=30.0, on_retry=log_it)

An error is retried when ``retriable(exc)`` is true (default: its ``retriable`` attribute, which
``FanoutError`` and aiokafka's ``KafkaError`` both carry); anything else propagates at once.
``attempts`` and ``within`` (seconds) bound the retrying; without them it retries until it
succeeds or the caller is cancelled. Built on tenacity.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    stop_after_delay,
    stop_never,
    wait_exponential,
    wait_random,
)
from tenacity.stop import stop_base

T = TypeVar("T")


def is_retriable(exc: BaseException) -> bool:
    """True when the error says a retry can help (``exc.retriable``)."""
    return bool(getattr(exc, "retriable", False))


async def retry(
    op: Callable[[], Awaitable[T]],
    *,
    retriable: Callable[[BaseException], bool] = is_retriable,
    attempts: int | None = None,
    within: float | None = None,
    first_delay: float = 0.05,
    max_delay: float = 5.0,
    on_retry: Callable[[BaseException, float], None] | None = None,
) -> T:
    """Await ``op()`` until it succeeds; back off after each retriable error.

    ``on_retry(error, delay)`` is told about each retry (to log or count it). When the bound is
    reached, the last error propagates unchanged.
    """
    stop: stop_base = stop_never
    if attempts is not None:
        stop = stop_after_attempt(attempts)
    if within is not None:
        stop = stop | stop_after_delay(within) if attempts is not None else stop_after_delay(within)

    def before_sleep(state: RetryCallState) -> None:
        if on_retry is not None and state.outcome is not None and state.next_action is not None:
            error = state.outcome.exception()
            if error is not None:
                on_retry(error, state.next_action.sleep)

    retrying = AsyncRetrying(
        retry=retry_if_exception(retriable),
        stop=stop,
        wait=wait_exponential(multiplier=first_delay, max=max_delay) + wait_random(0, first_delay),
        before_sleep=before_sleep,
        reraise=True,
    )
    result: T = await retrying(op)
    return result


__all__ = ["is_retriable", "retry"]
