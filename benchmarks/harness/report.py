"""Results: the console table, ``results/<stamp>.json`` and ``results/<stamp>.md`` (plots: ``plots.py``)."""

from __future__ import annotations

import json
import math
import os
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
    console.print("summary: " + ", ".join(f"{k} {_number(v)}" for k, v in results.get("summary", {}).items()))


def _number(value: float | None) -> str:
    if value is None:
        return "null"
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def write_json(path: Path, results: dict[str, Any]) -> None:
    path.write_text(json.dumps(results, indent=1, default=str) + "\n")


def write_markdown(path: Path, results: dict[str, Any], plots: list[str]) -> None:
    lines = [
        f"# fanout benchmarks, {results['stamp']}",
        "",
        f"{'Quick' if results['quick'] else 'Full'} run, medians of {results['repeats']} runs per case; "
        f"machine: {results['machine']}. Reproduce: `make bench` (see `benchmarks/README.md`).",
        "",
        f"Stack: {results.get('stack', '')}.",
        "",
        "## Summary",
        "",
        "Medians of the runs (`summary` in the JSON, the run counts in `summary_runs`; null = the case did "
        "not run).",
        "",
        "| key | value | median of |",
        "| --- | ---: | ---: |",
        *(f"| `{k}` | {_number(v)} | {results.get('summary_runs', {}).get(k, 0)} runs |"
          for k, v in results.get("summary", {}).items()),
        "",
        "## All measurements",
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
        if "load_average" in case:
            before, after = case["load_average"]
            lines += [f"Took {case.get('elapsed_s', 0):.0f} s; machine load average {before} before, {after} after.",
                      ""]
        for note in case.get("notes", []):
            lines.append(f"- {note}")
        if "sweep" in case and isinstance(case["sweep"], list):
            lines += ["", "| chunk size | chunks/pass | rows/s | HIGH p50 | HIGH p99 | LOW p50 | LOW p99 |",
                      "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
            for r in case["sweep"]:
                lines.append(f"| {r['chunk_size']} | {r['chunks']} | {r['rate']:,.0f} | {r['high_p50']:.2f}s | "
                             f"{r['high_p99']:.2f}s | {r['low_p50']:.2f}s | {r['low_p99']:.2f}s |")
        if "sweep_table" in case:
            lines += ["", "| sweep (part of a pass) | processes | rows/s |", "| --- | ---: | ---: |"]
            lines += [f"| {r['strategy']} | {r['processes']} | {r['rate']:,.0f} |" for r in case["sweep_table"]]
        if "ceiling" in case:
            lines += ["", "| strategy | rows/s | rows/request | client CPU us/row | Cassandra CPU us/row, minus idle "
                      "| Cassandra CPU us/row, gross |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
            for r in case["rows"]:
                if "client_us_per_row" in r:
                    lines.append(f"| {r['name']} | {r['median']:,.0f} | {r['rows_per_request']:.1f} | "
                                 f"{r['client_us_per_row']:.1f} | {r['server_us_per_row']:.1f} | "
                                 f"{r.get('server_gross_us_per_row', math.nan):.1f} |")
        if "profile" in case:
            for label, section in case["profile"].items():
                lines += ["", f"**{label}**: wall {section['wall_s']} s, process CPU {section['process_cpu_s']} s, "
                          f"main-thread CPU {section['main_thread_cpu_s']} s", "", *_top_table(section["top"])]
        lines.append("")
    for role, section in results.get("worker_profiles", {}).items():
        lines += [f"## Worker profile: {role} (cProfile, main thread, {section['total_s']} s)", "",
                  *_top_table(section["top"]), ""]
    if plots:
        lines.append("## Plots")
        lines.append("")
        lines += [f"![{p}]({p})" for p in plots]
    path.write_text("\n".join(lines) + "\n")


def _top_table(top: list[dict[str, Any]]) -> list[str]:
    """The costliest functions of a profile (``profiles.summarize``) as Markdown table lines."""
    lines = ["| function | calls | tottime s | share |", "| --- | ---: | ---: | ---: |"]
    for f in top[:8]:
        lines.append(f"| `{f['function']}` | {f['calls']:,} | {f['tottime_s']} | {f['share']:.0%} |")
    return lines


def machine() -> str:
    return f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
