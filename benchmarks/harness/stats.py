"""Statistics of the runs: medians, percentiles counted per follower, and a result row."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from typing import Any

PCTS = (50, 95, 99)  # the latency percentiles every case reports


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else math.nan


def weighted_percentiles(samples: Iterable[tuple[float, int]], pcts: Sequence[float]) -> list[float]:
    """Nearest-rank percentiles of values each counted ``weight`` times (a chunk's latency per
    follower); NaN when there is no weight at all."""
    pairs = sorted(samples)
    total = sum(w for _, w in pairs)
    if total == 0:
        return [math.nan for _ in pcts]
    out = []
    for pct in pcts:
        target = max(1, math.ceil(pct / 100 * total))
        seen = 0
        for value, weight in pairs:
            seen += weight
            if seen >= target:
                out.append(value)
                break
    return out


def row(name: str, runs: list[float], unit: str = "rows/s", **extra: Any) -> dict[str, Any]:
    """One line of a case's result table: the median of ``runs``, and the runs beside it."""
    return {"name": name, "unit": unit, "median": median(runs), "runs": runs, **extra}


def single(name: str, value: float, unit: str, **extra: Any) -> dict[str, Any]:
    """A line that is one measurement (or a percentile pooled over runs), no runs beside it."""
    return {"name": name, "unit": unit, "median": value, "runs": [], **extra}
