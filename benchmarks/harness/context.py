"""The run context every case gets: settings, sizes, where to write, what to clean up."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from fanout import Settings
from fanout.activity import now_micros

from .workload import Workload, standard

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
WORK = BENCH_DIR / ".work"
RESULTS = BENCH_DIR / "results"
DAY_US = 86_400 * 1_000_000


@dataclass
class Context:
    """What every case gets: settings, sizes, where to write, and what to clean up."""

    quick: bool
    repeats: int
    console: Console
    settings: Settings
    run_id: str = field(default_factory=lambda: datetime.now(UTC).strftime("%m%d%H%M%S") + uuid.uuid4().hex[:4])
    stamp: str = ""  # names the result files of this run
    high_writers: int = 2
    low_writers: int = 1
    follows_workers: int = 1  # case 8: follows agent processes
    large: int = 0  # followers of case 6's account through Cassandra and the pipeline (0: default)
    keep: bool = False
    profile_workers: bool = False  # run the pipeline's workers under cProfile
    pipeline_ok: bool = True  # False when the pipeline's modules are missing: its parts are skipped
    keyspaces: list[str] = field(default_factory=list)  # created by this run: dropped at the end
    topic_prefixes: list[str] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)  # results one case hands to another
    service_pids: dict[str, int] = field(default_factory=dict)  # "cassandra", "kafka": the servers measured
    t0_us: int = field(default_factory=lambda: now_micros() - 3_600_000_000)

    @property
    def work(self) -> Path:
        path = WORK / self.run_id
        path.mkdir(parents=True, exist_ok=True)
        return path

    def keyspace(self, name: str) -> str:
        ks = f"bench_{self.run_id}_{name}"
        if ks not in self.keyspaces:
            self.keyspaces.append(ks)
        return ks

    def data_wiped(self) -> None:
        """The node restarted on empty data: its keyspaces and the graphs loaded into them are gone
        (``stores.ensure_edges`` must load a graph again; it skipped it, and a case ran on no edges)."""
        self.keyspaces.clear()
        for key in [k for k in self.shared if k.startswith("loaded:")]:
            del self.shared[key]

    def log(self, message: str) -> None:
        self.console.print(f"[dim]{time.strftime('%H:%M:%S')}[/] {message}")

    @property
    def active_window_us(self) -> int:
        """How long a follow edge of an active (HIGH) follower stays active, in microseconds."""
        return int(self.settings.active_window_days * DAY_US)

    # sizes ---------------------------------------------------------------------------------
    @property
    def users(self) -> int:
        return 10_000 if not self.quick else 5_000

    @property
    def activities(self) -> int:
        """The standard workload: about 60k deliveries (quick: about 12k)."""
        return 24 if not self.quick else 10

    @property
    def large_followers(self) -> int:
        return self.large or (200_000 if not self.quick else 20_000)

    @property
    def sf_deliveries(self) -> int:
        """Case 7 runs a prefix of the standard workload worth this many deliveries."""
        return 20_000 if not self.quick else 5_000

    # workloads -------------------------------------------------------------------------------
    def standard_workload(self) -> Workload:
        """The workload most cases share (built once per run)."""
        if "workload" not in self.shared:
            self.shared["workload"] = standard(self.users, self.activities, t0_us=self.t0_us)
        wl: Workload = self.shared["workload"]
        return wl

    def sf_workload(self) -> Workload:
        """The prefix of the standard workload that case 7 runs (Stream Framework is slow)."""
        return self.standard_workload().prefix(self.sf_deliveries)
