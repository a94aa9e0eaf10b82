"""The run's ``summary``: a flat object of numbers that tools compare from run to run.

Each case hands its share under its result's ``summary`` key (medians of its runs) and how many
runs each median is of under ``summary_runs``; the ratio to the ceiling is taken here. A value
whose case did not run (not chosen with ``--cases``, or failed: the run then exits 1) is ``null``.
"""

from __future__ import annotations

import math
from typing import Any

KEYS = (
    "pipeline_rows_per_s",  # case 3: deliveries/s end to end, median of the passes
    "ceiling_rows_per_s",  # case 1: the same rows written raw by the best strategy, median of the passes
    "pipeline_vs_ceiling",
    "pipeline_vs_stream_framework",  # case 7: ours pipeline / SF Celery worker, same prefix of the workload
    "high_p99_s_loaded",  # case 3: HIGH p99 of each pass (full load), median
    "high_p99_busy_vs_idle",  # case 4: HIGH p99 while a LOW backlog drains / idle, per run, median
    "follows_per_s",  # case 8
    "replay_events_per_s",  # case 9
    "eager_deliveries_per_s",  # case 2: eager mode on MemoryStore
)


def summarize(cases: dict[str, Any]) -> dict[str, float | None]:
    """The summary object of a run's cases (exactly ``KEYS``, each a number or None)."""
    found: dict[str, float] = {}
    for case in cases.values():
        if "error" not in case:
            found.update(case.get("summary", {}))
    if "pipeline_rows_per_s" in found and found.get("ceiling_rows_per_s"):
        found["pipeline_vs_ceiling"] = found["pipeline_rows_per_s"] / found["ceiling_rows_per_s"]
    out: dict[str, float | None] = {}
    for key in KEYS:
        value = found.get(key)
        out[key] = None if value is None or math.isnan(value) else float(value)
    return out


def summary_runs(cases: dict[str, Any]) -> dict[str, int]:
    """How many runs each summary value is the median of (0: not measured); a ratio counts the
    fewer of its two sides."""
    found: dict[str, int] = {}
    for case in cases.values():
        if "error" not in case:
            found.update(case.get("summary_runs", {}))
    if "pipeline_rows_per_s" in found and "ceiling_rows_per_s" in found:
        found["pipeline_vs_ceiling"] = min(found["pipeline_rows_per_s"], found["ceiling_rows_per_s"])
    return {key: found.get(key, 0) for key in KEYS}
