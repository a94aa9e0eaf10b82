"""The PNG plots of a run (matplotlib, the ``bench`` extra; none when it is missing).

Every plot labels its values, draws the spread of the runs (min-max) where there are runs, keeps
p99 beside p50, and puts legends outside the data (below the axes), so nothing hides a bar.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .stats import weighted_percentiles

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

HIGH_COLOR = "#C44E52"
LOW_COLOR = "#4C72B0"
GREY = "#8C8C8C"
BUCKET_S = 0.5  # case 3's latency percentiles are taken per bucket of commit time
THROUGHPUT_UNITS = ("rows/s", "follows/s", "events/s")


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
        ("ceiling", _ceiling(cases.get("1", {}))),
        ("latency", _latency(cases, series)),
        ("chunk-sweep", _chunk_sweep(sweep) if isinstance(sweep, list) and sweep else None),
    ]
    names = []
    for suffix, fig in figures:
        if fig is None:
            continue
        name = f"{stamp}-{suffix}.png"
        fig.savefig(directory / name, dpi=110, bbox_inches="tight")
        _close(fig)
        names.append(name)
    return names


def _close(fig: Figure) -> None:
    import matplotlib.pyplot as plt

    plt.close(fig)


def _short(value: float) -> str:
    if math.isnan(value):
        return "-"
    if value >= 1e6:
        return f"{value / 1e6:.2f}M"
    if value >= 1e4:
        return f"{value / 1e3:.0f}k"
    if value >= 1e3:
        return f"{value / 1e3:.1f}k"
    return f"{value:.3g}"


def _spread(median: float, runs: Sequence[float]) -> tuple[float, float]:
    """(below, above) the median to the runs' min and max (0 without runs)."""
    if not runs:
        return 0.0, 0.0
    return max(0.0, median - min(runs)), max(0.0, max(runs) - median)


def _hbars(ax: Axes, labels: list[str], values: list[float], runs: list[Sequence[float]], color: Any,
           unit: str) -> None:
    """Horizontal bars with min-max error bars and value labels past the bar's end."""
    ys = list(range(len(values)))
    errors = [_spread(v, r) for v, r in zip(values, runs, strict=True)]
    ax.barh(ys, values, color=color, xerr=[[e[0] for e in errors], [e[1] for e in errors]],
            error_kw={"ecolor": "black", "capsize": 3, "linewidth": 1})
    for y, value, err in zip(ys, values, errors, strict=True):
        ax.annotate(f"{_short(value)} {unit}", (value + err[1], y), xytext=(4, 0), textcoords="offset points",
                    va="center", fontsize=8)
    ax.set_yticks(ys, [label if len(label) < 80 else label[:77] + "..." for label in labels], fontsize=8)
    ax.invert_yaxis()


def _throughput(cases: dict[str, Any], stamp: str) -> Figure | None:
    """Every throughput line of every case: median bars, min-max of the runs, value labels."""
    import matplotlib.pyplot as plt

    bars = []
    for key, case in cases.items():
        for line in case.get("rows", []):
            if line.get("unit") in THROUGHPUT_UNITS and not math.isnan(line["median"]):
                bars.append((f"{key}: {line['name']} ({line['unit']})", line["median"], line.get("runs", [])))
    if not bars:
        return None
    fig, ax = plt.subplots(figsize=(12, 0.36 * len(bars) + 1.6))
    _hbars(ax, [b[0] for b in bars], [b[1] for b in bars], [b[2] for b in bars], LOW_COLOR, "")
    ax.set_xscale("log")
    ax.set_xlim(right=max(b[1] for b in bars) * 8)  # room for the labels
    ax.set_xlabel("per second, log scale: median of the runs, error bar = min-max of the runs")
    ax.set_title(f"fanout benchmarks {stamp}: throughput per case")
    fig.tight_layout()
    return fig


def _ceiling(case: dict[str, Any]) -> Figure | None:
    """Case 1: rows/s per raw strategy, and client vs server CPU per row."""
    import matplotlib.pyplot as plt

    lines = [r for r in case.get("rows", []) if r.get("unit") == "rows/s" and "client_us_per_row" in r]
    if not lines:
        return None
    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 0.5 * len(lines) + 2), sharey=True)
    labels = [r["name"].replace(" (cassandra-driver)", "") for r in lines]
    colors = [HIGH_COLOR if r["name"].startswith("ceiling") else GREY if "acsylla" in r["name"] else LOW_COLOR
              for r in lines]
    _hbars(left, labels, [r["median"] for r in lines], [r["runs"] for r in lines], colors, "rows/s")
    left.set_xlim(right=max(r["median"] for r in lines) * 1.35)
    left.set_xlabel("rows/s (median, min-max of the runs)")
    left.set_title("case 1: the same rows written raw")
    ys = list(range(len(lines)))
    client = [r["client_us_per_row"] for r in lines]
    server = [r.get("server_gross_us_per_row", r["server_us_per_row"]) for r in lines]
    right.barh(ys, client, color=LOW_COLOR, label="client CPU per row")
    right.barh(ys, server, left=client, color=HIGH_COLOR,
               label="Cassandra CPU per row (gross: all the node did during the passes)")
    for y, c, s in zip(ys, client, server, strict=True):
        right.annotate(f"{c:.0f} + {s:.0f} us", (c + s, y), xytext=(4, 0), textcoords="offset points",
                       va="center", fontsize=8)
    right.set_xlim(right=max(c + s for c, s in zip(client, server, strict=True)) * 1.35)
    right.set_xlabel("CPU microseconds per row (client + server)")
    right.set_title("where the CPU goes")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.12), ncol=2, frameon=False)
    fig.tight_layout()
    return fig


def _latency(cases: dict[str, Any], series: dict[str, Any]) -> Figure | None:
    """Latency: p50/p95/p99 bars per situation, case 3's burst over time, case 4's probes over time."""
    import matplotlib.pyplot as plt

    groups = _latency_groups(cases)
    panels = [p for p, ok in (("bars", bool(groups)), ("case3", "case3" in series),
                              ("case4", "case4_busy" in series)) if ok]
    if not panels:
        return None
    fig, axes = plt.subplots(1, len(panels), figsize=(6.8 * len(panels), 5.2), squeeze=False)
    for ax, panel in zip(axes[0], panels, strict=True):
        if panel == "bars":
            _latency_bars(ax, groups)
        elif panel == "case3":
            _burst(ax, series["case3"])
        else:
            _probes(ax, series)
    fig.tight_layout()
    return fig


def _latency_groups(cases: dict[str, Any]) -> list[tuple[str, dict[str, float], dict[str, list[float]]]]:
    """(situation, {pNN: value}, {pNN: per-run values}) of case 3 (HIGH and LOW) and case 4 (HIGH)."""
    out = []
    c3, c4 = cases.get("3", {}), cases.get("4", {})
    for priority in ("high", "low"):
        if priority in c3.get("latency", {}):
            runs = {f"p{q}": [r[priority][i] for r in c3.get("latency_runs", [])] for i, q in enumerate((50, 95, 99))}
            out.append((f"case 3 {priority.upper()}\nfull load", c3["latency"][priority], runs))
    for key, label in (("high_idle", "case 4 HIGH\nidle"), ("high_busy", "case 4 HIGH\nLOW backlog")):
        if key in c4.get("latency", {}):
            out.append((label, c4["latency"][key], {}))
    return out


def _latency_bars(ax: Axes, groups: list[tuple[str, dict[str, float], dict[str, list[float]]]]) -> None:
    width = 0.26
    top = 0.0
    for k, (pct, color) in enumerate((("p50", "#55A868"), ("p95", "#DD8452"), ("p99", HIGH_COLOR))):
        xs = [i + (k - 1) * width for i in range(len(groups))]
        values = [g[1].get(pct, math.nan) for g in groups]
        errors = [_spread(v, g[2].get(pct, [])) for v, g in zip(values, groups, strict=True)]
        ax.bar(xs, values, width, color=color, label=pct,
               yerr=[[e[0] for e in errors], [e[1] for e in errors]], capsize=3, error_kw={"linewidth": 1})
        for x, v, e in zip(xs, values, errors, strict=True):
            ax.annotate(f"{v:.2f}", (x, v + e[1]), xytext=(0, 2), textcoords="offset points", ha="center",
                        fontsize=7, rotation=90)
            if not math.isnan(v):
                top = max(top, v + e[1])
    ax.set_xticks(range(len(groups)), [g[0] for g in groups], fontsize=8)
    ax.set_ylabel("produce -> visible latency (s), per follower")
    ax.set_yscale("log")
    if top > 0:
        ax.set_ylim(top=top * 4)  # room for the rotated value labels under the title
    ax.set_title("latency percentiles (error bars: min-max of the runs)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=3, frameon=False)


def _burst(ax: Axes, points: list[list[Any]]) -> None:
    for priority, color in (("high", HIGH_COLOR), ("low", LOW_COLOR)):
        buckets: dict[int, list[tuple[float, int]]] = {}
        for p, t, lat, n in points:
            if p == priority:
                buckets.setdefault(int(t / BUCKET_S), []).append((lat, n))
        xs = [b * BUCKET_S + BUCKET_S / 2 for b in sorted(buckets)]
        for pct, style in ((50, "-"), (99, "--")):
            ys = [weighted_percentiles(buckets[b], [pct])[0] for b in sorted(buckets)]
            ax.plot(xs, ys, style, color=color, marker="." if pct == 50 else "x", markersize=4 if pct == 50 else 6,
                    linewidth=1.2 if pct == 50 else 2.0, alpha=1.0 if pct == 50 else 0.6,
                    label=f"{priority.upper()} p{pct}")  # p99 wide and translucent: visible where it meets p50
    ax.set_xlabel("seconds since the burst was produced (commit time, 0.5 s buckets)")
    ax.set_ylabel("produce -> visible latency (s)")
    ax.set_title("case 3: one burst through the pipeline (median pass)")
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False)


def _probes(ax: Axes, series: dict[str, Any]) -> None:
    busy = series["case4_busy"]
    ax.plot([b[0] for b in busy], [b[1] for b in busy], ".", color=HIGH_COLOR, label="HIGH probe chunk latency")
    idle = [s[1] for s in series.get("case4_idle", [])]
    if idle:
        for pct, style in ((50, "-."), (99, ":")):
            value = weighted_percentiles([(v, 1) for v in idle], [pct])[0]
            ax.axhline(value, color=HIGH_COLOR, linestyle=style, label=f"HIGH p{pct} idle ({value:.2f} s)")
    ax.set_xlabel("seconds since the LOW backlog was produced")
    ax.set_ylabel("HIGH latency (s)")
    ax.set_title("case 4: HIGH probes while the LOW backlog drains (median run)")
    drain = series.get("case4_low_drain", [])
    handles, labels = ax.get_legend_handles_labels()
    if drain:
        twin = ax.twinx()
        twin.plot([d[0] for d in drain], [d[1] for d in drain], color=LOW_COLOR, label="LOW rows left")
        twin.set_ylabel("LOW backlog rows left")
        twin.set_ylim(bottom=0)
        more_h, more_l = twin.get_legend_handles_labels()
        handles, labels = handles + more_h, labels + more_l
    ax.legend(handles, labels, loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=2, frameon=False)


def _chunk_sweep(sweep: list[dict[str, Any]]) -> Figure:
    """Case 5: rows/s and p50/p99 per chunk size, error bars = min-max of the runs."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(13, 4.8))
    xs = list(range(len(sweep)))
    labels = [str(r["chunk_size"]) for r in sweep]
    rates = [r["rate"] for r in sweep]
    errors = [(r["rate"] - r.get("rate_min", r["rate"]), r.get("rate_max", r["rate"]) - r["rate"]) for r in sweep]
    left.bar(xs, rates, color=LOW_COLOR, yerr=[[e[0] for e in errors], [e[1] for e in errors]], capsize=4)
    for x, v, e in zip(xs, rates, errors, strict=True):
        left.annotate(_short(v), (x, v + e[1]), xytext=(0, 3), textcoords="offset points", ha="center", fontsize=8)
    left.set_xticks(xs, labels)
    left.set_xlabel("chunk size (feeds per chunk message)")
    left.set_ylabel("deliveries/s (median, min-max of the runs)")
    left.set_title("case 5: throughput per chunk size")
    offsets = {("high", "p50"): -0.24, ("high", "p99"): -0.08, ("low", "p50"): 0.08, ("low", "p99"): 0.24}
    for (priority, pct), dx in offsets.items():
        key = f"{priority}_{pct}"
        values = [r[key] for r in sweep]
        errs = [(r[key] - r.get(f"{key}_min", r[key]), r.get(f"{key}_max", r[key]) - r[key]) for r in sweep]
        color = HIGH_COLOR if priority == "high" else LOW_COLOR
        right.errorbar([x + dx for x in xs], values, yerr=[[max(0, e[0]) for e in errs], [max(0, e[1]) for e in errs]],
                       fmt="o" if pct == "p50" else "s", color=color, mfc="white" if pct == "p50" else color,
                       capsize=3, label=f"{priority.upper()} {pct}")
        for x, v in zip(xs, values, strict=True):
            right.annotate(f"{v:.2f}", (x + dx, v), xytext=(0, 6), textcoords="offset points", ha="center",
                           fontsize=6, rotation=90)
    right.set_xticks(xs, labels)
    right.set_yscale("log")
    right.set_xlabel("chunk size (feeds per chunk message)")
    right.set_ylabel("produce -> visible latency (s), pooled over the runs")
    right.set_title("case 5: latency per chunk size (error bars: min-max of the runs)")
    right.legend(loc="upper center", bbox_to_anchor=(0.5, -0.14), ncol=4, frameon=False)
    fig.tight_layout()
    return fig
