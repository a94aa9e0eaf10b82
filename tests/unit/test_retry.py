"""The one retry helper: what is retried, how long, and what the caller hears about it."""

from __future__ import annotations

import pytest

from fanout import StoreError
from fanout.retry import retry


class Flaky:
    def __init__(self, failures: list[BaseException]) -> None:
        self.failures = failures
        self.calls = 0

    async def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


async def test_retriable_errors_are_retried_until_success() -> None:
    op = Flaky([StoreError("timeout"), StoreError("timeout")])
    heard: list[tuple[str, float]] = []
    assert await retry(op, first_delay=0.001, on_retry=lambda e, d: heard.append((str(e), d))) == "done"
    assert op.calls == 3
    assert [e for e, _ in heard] == ["timeout", "timeout"]
    assert all(0 <= d <= 5.0 for _, d in heard)


async def test_other_errors_propagate_at_once() -> None:
    op = Flaky([StoreError("schema missing", retriable=False)])
    with pytest.raises(StoreError, match="schema missing"):
        await retry(op, first_delay=0.001)
    assert op.calls == 1
    op = Flaky([ValueError("bug")])
    with pytest.raises(ValueError):
        await retry(op, first_delay=0.001)
    assert op.calls == 1


async def test_attempts_bound_the_retrying_and_the_last_error_propagates() -> None:
    op = Flaky([StoreError(f"timeout {i}") for i in range(10)])
    with pytest.raises(StoreError, match="timeout 2"):
        await retry(op, attempts=3, first_delay=0.001)
    assert op.calls == 3


async def test_within_bounds_the_time() -> None:
    op = Flaky([StoreError("down")] * 1000)
    with pytest.raises(StoreError):
        await retry(op, within=0.05, first_delay=0.01, max_delay=0.01)
    assert 2 <= op.calls < 50
