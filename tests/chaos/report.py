"""The one-line summary every chaos run prints, kept in ``summary.txt`` of the run's log directory."""

from __future__ import annotations

from pathlib import Path
from typing import Any


class Summaries:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.lines: list[str] = []

    def add(self, scenario: str, **fields: Any) -> str:
        """``chaos[scenario] k=v ...`` (dict values as ``a:1,b:2``); appended to summary.txt. Scenarios
        end with ``logs=<their log directory>``."""
        parts = []
        for key, value in fields.items():
            if isinstance(value, dict):
                value = ",".join(f"{k}:{v}" for k, v in value.items()) or "none"
            elif isinstance(value, float):
                value = f"{value:.1f}"
            parts.append(f"{key}={value}")
        line = f"chaos[{scenario}] {' '.join(parts)}"
        self.lines.append(line)
        with open(self.run_dir / "summary.txt", "a") as f:
            f.write(line + "\n")
        return line
