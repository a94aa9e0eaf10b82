"""The wire contract of fanout as JSON Schema files, one per message type and version.

Services in any language produce against these files. The Python codecs in
``fanout.codec`` are their source; ``fanout schemas --write`` regenerates them and the test
suite fails when the two drift.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

DIRECTORY = Path(__file__).parent

__all__ = ["DIRECTORY", "load", "names"]


def names() -> list[str]:
    return sorted(p.name for p in DIRECTORY.glob("*.json"))


def load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DIRECTORY / name).read_text())
    return data
