"""What the pipeline bench observes: the chunks the planner produced, the committed offsets over
time, and the result of a pass (deliveries/s, per-follower latency)."""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .stats import PCTS, weighted_percentiles

POLL_S = 0.05  # how often the committed offsets are read: the latency's resolution

Latency = tuple[str, float, int, float]  # (priority, latency s, feeds, commit time since the pass began)


@dataclass(slots=True)
class ChunkRec:
    """A chunk message the planner produced, as the tracker consumer saw it."""

    priority: str
    topic: str
    partition: int
    offset: int
    activity_id: str
    feeds: int
    produced: float  # when the planner produced it (the record's timestamp, on the perf_counter clock)


@dataclass
class PassResult:
    label: str
    activities: int
    deliveries: int
    seconds: float
    latencies: list[Latency]
    expected: int | None = None
    verified: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0

    def samples(self, priority: str) -> list[tuple[float, int]]:
        """(latency, feeds) of this pass's chunks of ``priority``."""
        return [(lat, n) for p, lat, n, _ in self.latencies if p == priority]

    def pcts(self, priority: str) -> list[float]:
        return weighted_percentiles(self.samples(priority), PCTS)


class CommitHistory:
    """Committed offsets of one partition over time (monotonic)."""

    __slots__ = ("offsets", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.offsets: list[int] = []

    def add(self, t: float, offset: int) -> None:
        if not self.offsets or offset > self.offsets[-1]:
            self.times.append(t)
            self.offsets.append(offset)

    def committed_at(self, offset: int) -> float | None:
        """When the committed offset first passed ``offset`` (the record at ``offset`` is done)."""
        i = bisect.bisect_right(self.offsets, offset)
        return self.times[i] if i < len(self.offsets) else None


def pooled_samples(results: Sequence[PassResult], priority: str) -> list[tuple[float, int]]:
    return [s for r in results for s in r.samples(priority)]


def latency_rows(results: Sequence[PassResult]) -> dict[str, dict[str, float]]:
    """Latency percentiles per priority, pooled over the passes."""
    return {priority: named_pcts(pooled_samples(results, priority)) for priority in ("high", "low")}


def named_pcts(samples: Sequence[tuple[float, int]]) -> dict[str, float]:
    """{"p50": ..., "p95": ..., "p99": ...} of weighted latency samples."""
    return {f"p{p}": v for p, v in zip(PCTS, weighted_percentiles(samples, PCTS), strict=True)}


def series(result: PassResult) -> list[list[float | str]]:
    """The pass's chunk latencies over time, for the plot: [priority, commit time, latency, feeds]."""
    return [[p, round(t, 3), round(lat, 3), n] for p, lat, n, t in result.latencies]
