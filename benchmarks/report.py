"""Results: the console table, ``results/<stamp>.json``, ``results/<stamp>.md`` and PNG plots."""

from __future__ import annotations

import json
import math
import platform
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(value: Any, unit: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if unit == "s":
        return f"{value:.3f} s" if value < 10 else f"{value:.1f} s"
    if unit == "KiB":
        return f"{value:,.0f} KiB"
    if isinstance(value, float):
        return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.2f}"
    return str(value)


def _runs(row: dict[str, Any]) -> str:
    unit = row.get("unit", "")
    return ", ".join(_fmt(v, unit).replace(" s", "").replace(" KiB", "") for v in row.get("runs", []))


def summary_rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """(case, measure, median, runs) for every row of every case, then the ratios."""
    out = []
    for key, case in results["cases"].items():
        if "error" in case:
            out.append((key, case.get("title", ""), "not run", case["error"][:80]))
            continue
        for row in case.get("rows", []):
            out.append((key, row["name"], _fmt(row["median"], row.get("unit", "")) + _unit(row), _runs(row)))
        for name, lat in case.get("latency", {}).items():
            text = "  ".join(f"{k} {v:.3f}s" for k, v in lat.items() if not math.isnan(v))
            out.append((key, f"latency {name}", text, ""))
        for name, ratio in case.get("ratios", {}).items():
            out.append((key, f"ratio: {name}", f"{ratio:.2f}x", ""))
    return out


def _unit(row: dict[str, Any]) -> str:
    unit = row.get("unit", "")
    return f" {unit}" if unit not in ("s", "KiB", "") else ""


def print_table(console: Console, results: dict[str, Any]) -> None:
    table = Table(title=f"fanout benchmarks {results['stamp']} ({'quick' if results['quick'] else 'full'}, "
                        f"medians of {results['repeats']} runs)")
    table.add_column("case", justify="right")
    table.add_column("measure")
    table.add_column("median", justify="right")
    table.add_column("runs", style="dim")
    for row in summary_rows(results):
        table.add_row(*row)
    console.print(table)


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def write_markdown(path: Path, results: dict[str, Any], plots: list[str]) -> None:
    lines = [
        f"# fanout benchmarks, {results['stamp']}",
        "",
        f"{'Quick' if results['quick'] else 'Full'} run, medians of {results['repeats']} runs per case; "
        f"machine: {results['machine']}. Reproduce: `make bench` (see `benchmarks/README.md`).",
        "",
        "| case | measure | median | runs |",
        "| ---: | --- | ---: | --- |",
    ]
    for case, name, value, runs in summary_rows(results):
        lines.append(f"| {case} | {name} | {value} | {runs} |")
    lines.append("")
    for key, case in results["cases"].items():
        lines.append(f"## Case {key}: {case.get('title', '')}")
        lines.append("")
        if "error" in case:
            lines += [f"Not run: {case['error']}", ""]
            continue
        lines.append("Inputs: " + "; ".join(f"{k}: {v}" for k, v in case.get("inputs", {}).items()))
        lines.append("")
        for note in case.get("notes", []):
            lines.append(f"- {note}")
        if "sweep" in case and isinstance(case["sweep"], list):
            lines += ["", "| chunk size | chunks/pass | rows/s | HIGH p50 | HIGH p99 | LOW p50 | LOW p99 |",
                      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for r in case["sweep"]:
                lines.append(f"| {r['chunk_size']} | {r['chunks']} | {r['rate']:,.0f} | {r['high_p50']:.2f}s | "
                             f"{r['high_p99']:.2f}s | {r['low_p50']:.2f}s | {r['low_p99']:.2f}s |")
        elif "sweep" in case:
            lines += ["", "| in flight | " + " | ".join(case["sweep"]["single"]) + " |",
                      "| --- |" + " ---: |" * len(case["sweep"]["single"])]
            for mode, rates in case["sweep"].items():
                lines.append(f"| {mode} rows/s | " + " | ".join(f"{v:,.0f}" for v in rates.values()) + " |")
        if "profile" in case:
            for label, section in case["profile"].items():
                lines += ["", f"**{label}**: wall {section['wall_s']} s, process CPU {section['process_cpu_s']} s, "
                          f"main-thread CPU {section['main_thread_cpu_s']} s", "",
                          "| function | calls | tottime s | share |", "| --- | ---: | ---: | ---: |"]
                for f in section["top"][:8]:
                    lines.append(f"| `{f['function']}` | {f['calls']:,} | {f['tottime_s']} | {f['share']:.0%} |")
        lines.append("")
    for role, section in results.get("worker_profiles", {}).items():
        lines += [f"## Worker profile: {role} (cProfile, main thread, {section['total_s']} s)", "",
                  "| function | calls | tottime s | share |", "| --- | ---: | ---: | ---: |"]
        for f in section["top"][:8]:
            lines.append(f"| `{f['function']}` | {f['calls']:,} | {f['tottime_s']} | {f['share']:.0%} |")
        lines.append("")
    if plots:
        lines.append("## Plots")
        lines.append("")
        lines += [f"![{p}]({p})" for p in plots]
    path.write_text("\n".join(lines) + "\n")


def machine() -> str:
    import os

    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def plot(results: dict[str, Any], directory: Path, stamp: str) -> list[str]:
    """PNG plots; returns their file names (none when matplotlib is missing)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    names = []
    cases = results["cases"]

    # throughput per case
    bars = []
    for key, case in cases.items():
        for row in case.get("rows", []):
            if row.get("unit") == "rows/s" and not math.isnan(row["median"]):
                bars.append((f"{key}: {row['name']}", row["median"], row.get("runs", [])))
    if bars:
        fig, ax = plt.subplots(figsize=(11, 0.42 * len(bars) + 1.5))
        labels = [b[0] if len(b[0]) < 70 else b[0][:67] + "..." for b in bars]
        ax.barh(range(len(bars)), [b[1] for b in bars], color="#4C72B0")
        for i, b in enumerate(bars):
            ax.plot(b[2], [i] * len(b[2]), "k.", markersize=4)
        ax.set_yticks(range(len(bars)), labels, fontsize=8)
        ax.invert_yaxis()
        ax.set_xscale("log")
        ax.set_xlabel("deliveries (timeline rows) per second, log scale, median (dots: runs)")
        ax.set_title(f"fanout benchmarks {stamp}: throughput per case")
        fig.tight_layout()
        name = f"{stamp}-throughput.png"
        fig.savefig(directory / name, dpi=110)
        plt.close(fig)
        names.append(name)

    # latency percentiles per priority over time (case 3 burst, case 4 probes)
    series = {}
    for case in cases.values():
        series.update(case.get("series", {}))
    if "case3" in series or "case4_busy" in series:
        panels = [k for k in ("case3", "case4_busy") if k in series]
        fig, axes = plt.subplots(1, len(panels), figsize=(6.5 * len(panels), 4.5), squeeze=False)
        ax = axes[0][0]
        if "case3" in series:
            for priority, color in (("high", "#C44E52"), ("low", "#4C72B0")):
                pts = sorted((t, lat, n) for p, t, lat, n in series["case3"] if p == priority)
                buckets: dict[int, list[tuple[float, int]]] = {}
                for t, lat, n in pts:
                    buckets.setdefault(int(t / 0.5), []).append((lat, n))
                for pct, style in ((50, "-"), (99, "--")):
                    xs, ys = [], []
                    for b in sorted(buckets):
                        xs.append(b * 0.5 + 0.25)
                        ys.append(_wpct(buckets[b], pct))
                    ax.plot(xs, ys, style, color=color, label=f"{priority.upper()} p{pct}")
            ax.set_xlabel("seconds since the burst was produced (commit time, 0.5 s buckets)")
            ax.set_ylabel("produce -> visible latency (s)")
            ax.set_title("case 3: one burst through the pipeline")
            ax.legend()
        ax = axes[0][-1]
        if "case4_busy" in series:
            busy = series["case4_busy"]
            ax.plot([b[0] for b in busy], [b[1] for b in busy], ".", color="#C44E52", label="HIGH probe chunk latency")
            idle = [s[1] for s in series.get("case4_idle", [])]
            if idle:
                ax.axhline(_wpct([(v, 1) for v in idle], 99), color="#C44E52", linestyle=":",
                           label="HIGH p99 idle")
            ax.set_xlabel("seconds since the LOW backlog was produced")
            ax.set_ylabel("HIGH latency (s)")
            ax.set_title("case 4: HIGH probes while the LOW backlog drains")
            drain = series.get("case4_low_drain", [])
            if drain:
                ax2 = ax.twinx()
                ax2.plot([d[0] for d in drain], [d[1] for d in drain], color="#4C72B0", label="LOW rows left")
                ax2.set_ylabel("LOW backlog rows left")
                ax2.legend(loc="upper center")
            ax.legend(loc="upper right")
        fig.tight_layout()
        name = f"{stamp}-latency.png"
        fig.savefig(directory / name, dpi=110)
        plt.close(fig)
        names.append(name)

    # chunk size sweep
    sweep = cases.get("5", {}).get("sweep")
    if isinstance(sweep, list) and sweep:
        fig, ax = plt.subplots(figsize=(8, 4.5))
        xs = [r["chunk_size"] for r in sweep]
        ax.plot(xs, [r["rate"] for r in sweep], "o-", color="#4C72B0", label="rows/s")
        ax.set_xscale("log")
        ax.set_xlabel("chunk size (feeds per chunk message)")
        ax.set_ylabel("deliveries/s")
        ax2 = ax.twinx()
        ax2.plot(xs, [r["high_p99"] for r in sweep], "s--", color="#C44E52", label="HIGH p99 (s)")
        ax2.plot(xs, [r["low_p99"] for r in sweep], "^--", color="#8172B2", label="LOW p99 (s)")
        ax2.set_ylabel("latency p99 (s)")
        ax.set_title("case 5: chunk size sweep")
        fig.legend(loc="lower center", ncol=3)
        fig.tight_layout(rect=(0, 0.08, 1, 1))
        name = f"{stamp}-chunk-sweep.png"
        fig.savefig(directory / name, dpi=110)
        plt.close(fig)
        names.append(name)
    return names


def _wpct(samples: list[tuple[float, int]], pct: float) -> float:
    pairs = sorted(samples)
    total = sum(n for _, n in pairs)
    target = max(1, math.ceil(pct / 100 * total))
    seen = 0
    for value, n in pairs:
        seen += n
        if seen >= target:
            return value
    return math.nan
