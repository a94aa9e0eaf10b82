"""Memory of a process: its RSS from /proc (now, peak, sampled while something runs), and the
peak of Python allocations while awaiting something (tracemalloc)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import tracemalloc
from collections.abc import Awaitable
from typing import TypeVar

T = TypeVar("T")


def rss_kib(pid: int | None = None) -> tuple[int, int]:
    """(current RSS, peak RSS) in KiB of a process (default: this one), from /proc."""
    path = f"/proc/{pid or os.getpid()}/status"
    cur = peak = 0
    with contextlib.suppress(OSError), open(path, encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1])
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1])
    return cur, peak


class PeakRss:
    """``async with PeakRss(pid) as rss:`` samples the RSS of a process (default: this one) every
    ``interval`` seconds while the block runs: ``rss.before`` and ``rss.peak`` in KiB."""

    def __init__(self, pid: int | None = None, interval: float = 0.02) -> None:
        self.pid = pid
        self.interval = interval
        self.before = self.peak = 0
        self._done = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _sample(self) -> None:
        while not self._done.is_set():
            self.peak = max(self.peak, rss_kib(self.pid)[0])
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> PeakRss:
        self.before = self.peak = rss_kib(self.pid)[0]
        self._task = asyncio.create_task(self._sample())
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._done.set()
        if self._task is not None:
            await self._task

    @property
    def growth(self) -> int:
        return self.peak - self.before


async def traced(awaitable: Awaitable[T]) -> tuple[T, float, int]:
    """Await under tracemalloc: (its result, seconds, peak bytes allocated above those at the start)."""
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    tracemalloc.reset_peak()
    started = time.perf_counter()
    try:
        result = await awaitable
        seconds = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    return result, seconds, peak
