"""The distribution claims one import name, ``fanout``, and carries every module and schema file."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_wheel_installs_only_fanout_with_every_module(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(tmp_path), str(ROOT)],
        check=True, capture_output=True,
    )
    output = (built.stdout + built.stderr).decode()
    assert "deprecated" not in output, f"the build warns (a new user sees it in `make run`): {output[:2000]}"
    (wheel,) = tmp_path.glob("fanout-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    assert "License-Expression: Apache-2.0" in zipfile.ZipFile(wheel).read(metadata).decode()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"fanout"}
    info = next(n for n in names if n.endswith(".dist-info/top_level.txt"))
    assert zipfile.ZipFile(wheel).read(info).decode().split() == ["fanout"]

    sources = {f"fanout/{p.relative_to(ROOT / 'fanout')}" for p in (ROOT / "fanout").rglob("*.py")}
    sources |= {f"fanout/agents/{p.relative_to(ROOT / 'agents')}" for p in (ROOT / "agents").rglob("*.py")}
    sources |= {f"fanout/schemas/{p.name}" for p in (ROOT / "schemas").iterdir() if p.suffix in (".py", ".json")}
    missing = sorted(s for s in sources if s not in names and "__pycache__" not in s)
    assert not missing, f"modules left out of the wheel: {missing}"
