"""A private Kafka broker and Cassandra node for a benchmark: fresh, restartable, beside the shared ones.

The project's own launcher starts them: a scratch root (``benchmarks/.work/stack-<name>/``) holds
a symlink to ``scripts/``, copies of ``services/`` whose ``cassandra.yaml.in`` is the project's
template with some top-level keys replaced (a settings variant), and ``.local/lib/<service>/``
with a symlink to each jar that ``make up`` resolved before (Maven needs the network, which the
namespace does not have). ``scripts/services.sh`` run from there keeps its
data, logs and pid files under the scratch root, so nothing of the shared stack is touched.

Every stack binds the same ports, so it runs in a network namespace of its own
(``/work/shared/services.md``, "A second stack beside the first"): ``enter_netns`` re-runs the
current command inside ``ip netns exec NAME`` (root only); the namespace has loopback only.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

from .context import ROOT, WORK

NETNS_ENV = "FANOUT_BENCH_NETNS"  # set inside the namespace: the re-run command is already in it
SERVICES = ("kafka", "cassandra")


def in_netns() -> str:
    """The name of the private namespace this process runs in ('' when it runs in the host's)."""
    return os.environ.get(NETNS_ENV, "")


def enter_netns(name: str) -> int:
    """Run this very command again inside the network namespace ``name`` (created with loopback up
    when missing, deleted afterwards when created here); return its exit code."""
    if os.geteuid() != 0:
        raise SystemExit("a private stack needs root (ip netns); run without --private-stack instead")
    existing = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True, check=True).stdout
    created = not re.search(rf"^{re.escape(name)}(\s|$)", existing, re.MULTILINE)
    if created:
        subprocess.run(["ip", "netns", "add", name], check=True)
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
    try:
        env = {**os.environ, NETNS_ENV: name}
        return subprocess.call(["ip", "netns", "exec", name, sys.executable, *sys.argv], env=env)
    finally:
        if created:
            subprocess.run(["ip", "netns", "del", name], check=False)


def jars_dir(explicit: str = "") -> Path:
    """Where the resolved Kafka and Cassandra jars are: ``explicit``, else this checkout's
    ``.local/lib``, else the main worktree's (``git worktree list``)."""
    candidates = [Path(explicit)] if explicit else [ROOT / ".local" / "lib", *_worktree_libs()]
    for path in candidates:
        if all((path / svc / ".resolved").exists() for svc in SERVICES):
            return path.resolve()
    raise SystemExit(f"no resolved Kafka/Cassandra jars in {', '.join(map(str, candidates))}: run `make up` once "
                     "(it resolves them with Maven) or pass --jars DIR")


def _worktree_libs() -> list[Path]:
    try:
        out = subprocess.run(["git", "worktree", "list", "--porcelain"], cwd=ROOT, capture_output=True,
                             text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return []
    return [Path(line.split(" ", 1)[1]) / ".local" / "lib" for line in out.splitlines() if line.startswith("worktree ")]


def render_yaml(template: str, overrides: Mapping[str, str]) -> str:
    """``template`` with each top-level key of ``overrides`` replaced (its line and the indented
    lines under it) by ``key: value``; a value may be a nested YAML block starting with a newline."""
    out: list[str] = []
    skipping = False
    for line in template.splitlines():
        if line and not line[0].isspace():  # a top-level line: a key, or a comment
            skipping = not line.startswith("#") and line.split(":", 1)[0].strip() in overrides
        if not skipping:
            out.append(line)
    out.append("# benchmark variant")
    out += [f"{key}: {value}" for key, value in overrides.items()]
    return "\n".join(out) + "\n"


class Stack:
    """A Kafka broker and a Cassandra node run by ``scripts/services.sh`` from a scratch root."""

    def __init__(self, name: str, jars: Path, cassandra_heap: str = "1G", kafka_heap: str = "512m") -> None:
        self.root = WORK / f"stack-{name}"
        self.jars = jars
        self.env = {**os.environ, "FANOUT_CASSANDRA_HEAP": cassandra_heap, "FANOUT_KAFKA_HEAP": kafka_heap,
                    "FANOUT_SERVICES_TIMEOUT": "900"}
        self.overrides: dict[str, str] = {}

    @property
    def local(self) -> Path:
        return self.root / ".local"

    def configure(self, overrides: Mapping[str, str] | None = None) -> None:
        """Lay out the scratch root; Cassandra's template gets ``overrides`` (top-level yaml keys).

        Nothing of it points back into a directory that ``services.sh`` may replace: its jar
        directories are this root's own (one symlink per jar, a fresh ``.resolved`` stamp) and its
        ``services/`` are copies whose poms are older than the stamp, so it never runs Maven.
        """
        self.overrides = dict(overrides or {})
        self.local.mkdir(parents=True, exist_ok=True)
        _link(self.root / "scripts", ROOT / "scripts")
        for svc in SERVICES:
            jars = self.local / "lib" / svc
            if not (jars / ".resolved").exists():
                jars.mkdir(parents=True, exist_ok=True)
                for jar in (self.jars / svc).glob("*.jar"):
                    _link(jars / jar.name, jar)
                (jars / ".resolved").touch()
            source = ROOT / "services" / svc
            target = self.root / "services" / svc
            target.mkdir(parents=True, exist_ok=True)
            for item in source.iterdir():
                if item.is_file():
                    shutil.copy(item, target / item.name)
            os.utime(target / "pom.xml", (0, 0))
        template = (ROOT / "services" / "cassandra" / "cassandra.yaml.in").read_text()
        (self.root / "services" / "cassandra" / "cassandra.yaml.in").write_text(render_yaml(template, self.overrides))

    def services(self, *args: str) -> str:
        """Run ``scripts/services.sh ARGS`` from the scratch root; its output (raises on failure)."""
        if not in_netns():
            raise RuntimeError("a private stack runs only inside its network namespace (enter_netns)")
        done = subprocess.run(["bash", str(self.root / "scripts" / "services.sh"), *args], env=self.env,
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"services.sh {' '.join(args)} failed (exit {done.returncode}):\n"
                               f"{done.stdout}{done.stderr}")
        return done.stdout

    def fresh(self, *services: str) -> str:
        """Stop the stack, wipe its data, start ``services`` (default both) on empty data."""
        out = self.services("clean-data")
        for svc in services or ("all",):
            out += self.services("up", svc)
        return out

    def restart_cassandra(self, overrides: Mapping[str, str], *, wipe: bool = True) -> str:
        """Stop Cassandra, render its yaml with ``overrides``, start it again (on empty data)."""
        out = self.services("down", "cassandra")
        self.configure(overrides)
        if wipe:
            shutil.rmtree(self.local / "cassandra" / "data", ignore_errors=True)
        return out + self.services("up", "cassandra")

    def down(self) -> str:
        return self.services("down")

    def pid(self, service: str) -> int | None:
        try:
            return int((self.local / service / "pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def _link(path: Path, target: Path) -> None:
    if path.is_symlink() or path.exists():
        if path.is_symlink() and path.resolve() == target.resolve():
            return
        if path.is_symlink() or path.is_file():
            path.unlink()
        else:
            shutil.rmtree(path)
    path.symlink_to(target)
