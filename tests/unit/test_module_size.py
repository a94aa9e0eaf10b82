"""One concept per module: no Python module of the project is over 400 lines.

The project's own folders only: scratch the benchmarks unpack (``benchmarks/.work``: Stream
Framework's source and virtualenv) and other hidden or build folders are not the project's code.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("fanout", "agents", "schemas", "tests", "benchmarks", "scripts")  # fanout/agents links to agents/
MAX_LINES = 400


def project_modules() -> list[Path]:
    found = []
    for folder in FOLDERS:
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT).parts
            if not any(part.startswith(".") or part in ("build", "__pycache__") for part in parts):
                found.append(path)
    return found


def test_no_module_is_over_400_lines() -> None:
    modules = project_modules()
    assert len(modules) > 100  # the walk found the project
    over = {str(p.relative_to(ROOT)): n for p in modules if (n := len(p.read_text().splitlines())) > MAX_LINES}
    assert over == {}
