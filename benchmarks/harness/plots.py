"""The PNG plots of a run (matplotlib, the ``bench`` extra; none when it is missing)."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .stats import weighted_percentiles

if TYPE_CHECKING:
    from matplotlib.figure import Figure

HIGH_COLOR = "#C44E52"
LOW_COLOR = "#4C72B0"
BUCKET_S = 0.5  # case 3's latency percentiles are taken per bucket of commit time


def plot(results: dict[str, Any], directory: Path, stamp: str) -> list[str]:
    """Write the PNG plots of ``results``; return their file names (none without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
    except ImportError:
        return []
    cases: dict[str, Any] = results["cases"]
    series: dict[str, Any] = {}
    for case in cases.values():
        series.update(case.get("series", {}))
    sweep = cases.get("5", {}).get("sweep")
    figures = [
        ("throughput", _throughput(cases, stamp)),
        ("latency", _latency(series)),
        ("chunk-sweep", _chunk_sweep(sweep) if isinstance(sweep, list) and sweep else None),
    ]
    names = []
    for suffix, fig in figures:
        if fig is None:
            continue
        name = f"{stamp}-{suffix}.png"
        fig.savefig(directory / name, dpi=110)
        _close(fig)
        names.append(name)
    return names


def _close(fig: Figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _throughput(cases: dict[str, Any], stamp: str) -> Figure | None:
    """Deliveries/s of every rows/s line of every case: bars for medians, dots for the runs."""
    import matplotlib.pyplot as plt

    bars = []
    for key, case in cases.items():
        for line in case.get("rows", []):
            if line.get("unit") == "rows/s" and not math.isnan(line["median"]):
                bars.append((f"{key}: {line['name']}", line["median"], line.get("runs", [])))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(11, 0.42 * len(bars) + 1.5))
    labels = [label if len(label) < 70 else label[:67] + "..." for label, _, _ in bars]
    ax.barh(range(len(bars)), [value for _, value, _ in bars], color=LOW_COLOR)
    for i, (_, _, runs) in enumerate(bars):
        ax.plot(runs, [i] * len(runs), "k.", markersize=4)
    ax.set_yticks(range(len(bars)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("deliveries (timeline rows) per second, log scale, median (dots: runs)")
    ax.set_title(f"fanout benchmarks {stamp}: throughput per case")
    fig.tight_layout()
    return fig


def _latency(series: dict[str, Any]) -> Figure | None:
    """Latency percentiles per priority over time: case 3's burst and case 4's HIGH probes."""
    import matplotlib.pyplot as plt

    panels = [k for k in ("case3", "case4_busy") if k in series]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
    ax = axes[0][0]
    if "case3" in series:
        for priority, color in (("high", HIGH_COLOR), ("low", LOW_COLOR)):
            buckets: dict[int, list[tuple[float, int]]] = {}
            for p, t, lat, n in series["case3"]:
                if p == priority:
                    buckets.setdefault(int(t / BUCKET_S), []).append((lat, n))
            for pct, style in ((50, "-"), (99, "--")):
                xs = [b * BUCKET_S + BUCKET_S / 2 for b in sorted(buckets)]
                ys = [weighted_percentiles(buckets[b], [pct])[0] for b in sorted(buckets)]
                ax.plot(xs, ys, style, color=color, label=f"{priority.upper()} p{pct}")
        ax.set_xlabel("seconds since the burst was produced (commit time, 0.5 s buckets)")
        ax.set_ylabel("produce -> visible latency (s)")
        ax.set_title("case 3: one burst through the pipeline")
        ax.legend()
    ax = axes[0][-1]
    if "case4_busy" in series:
        busy = series["case4_busy"]
        ax.plot([b[0] for b in busy], [b[1] for b in busy], ".", color=HIGH_COLOR, label="HIGH probe chunk latency")
        idle = [s[1] for s in series.get("case4_idle", [])]
        if idle:
            ax.axhline(weighted_percentiles([(v, 1) for v in idle], [99])[0], color=HIGH_COLOR, linestyle=":",
                       label="HIGH p99 idle")
        ax.set_xlabel("seconds since the LOW backlog was produced")
        ax.set_ylabel("HIGH latency (s)")
        ax.set_title("case 4: HIGH probes while the LOW backlog drains")
        drain = series.get("case4_low_drain", [])
        if drain:
            ax2 = ax.twinx()
            ax2.plot([d[0] for d in drain], [d[1] for d in drain], color=LOW_COLOR, label="LOW rows left")
            ax2.set_ylabel("LOW backlog rows left")
            ax2.legend(loc="upper center")
        ax.legend(loc="upper right")
    fig.tight_layout()
    return fig


def _chunk_sweep(sweep: list[dict[str, Any]]) -> Figure:
    """Case 5: rows/s and p99 latency per chunk size."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    xs = [r["chunk_size"] for r in sweep]
    ax.plot(xs, [r["rate"] for r in sweep], "o-", color=LOW_COLOR, label="rows/s")
    ax.set_xscale("log")
    ax.set_xlabel("chunk size (feeds per chunk message)")
    ax.set_ylabel("deliveries/s")
    ax2 = ax.twinx()
    ax2.plot(xs, [r["high_p99"] for r in sweep], "s--", color=HIGH_COLOR, label="HIGH p99 (s)")
    ax2.plot(xs, [r["low_p99"] for r in sweep], "^--", color="#8172B2", label="LOW p99 (s)")
    ax2.set_ylabel("latency p99 (s)")
    ax.set_title("case 5: chunk size sweep")
    fig.legend(loc="lower center", ncol=3)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
