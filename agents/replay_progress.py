"""How far a replay got: the summary it returns, the progress bar, and its commits' metadata.

Commit metadata and resuming
    After each batch's writes are acknowledged the replay commits, per partition, the offset
    after the last record it processed; the commit metadata (a ``CommitMark``) names the replay
    (the plan's fingerprint of what it writes: ``users``, ``kind``, ``end_offsets``) and whether
    it is running or done. Interrupted (Ctrl+C, ``stop``, a crash), the same replay run again
    resumes from those offsets (``since``/``start_offsets`` only place a fresh replay); a
    different replay refuses to start over an unfinished one (``ReplayConflict``) unless
    ``reset``. A finished replay run again starts over.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskID,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from fanout.errors import ConfigError

from .replay_options import ReplayPlan

__all__ = ["CommitMark", "ProgressBar", "ReplayConflict", "ReplaySummary", "resumable"]

_METADATA_PREFIX: Final = "fanout-replay/1 "


class ReplayConflict(ConfigError):
    """The replay group holds the progress of a replay with other options."""


@dataclass(slots=True)
class ReplaySummary:
    """What a replay did. ``rows`` counts timeline rows written (and acknowledged) by this process:
    fanout chunks, authors' own feeds, follow copies and unfollow deletes."""

    group: str
    total: int = 0  # records in the offset ranges replayed (grows when it catches up)
    events: int = 0  # records processed, whatever the outcome
    activities: int = 0
    follows: int = 0
    skipped: int = 0  # follow events of users outside ``users``
    invalid: int = 0
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    chunks_high: int = 0
    chunks_low: int = 0
    published_rows: int = 0  # via_kafka: feeds in the chunks published for the writer agents
    batches: int = 0
    resumed: bool = False
    interrupted: bool = False
    elapsed: float = 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.elapsed if self.elapsed > 0 else 0.0

    def table(self) -> Table:
        table = Table(title="replay " + ("interrupted" if self.interrupted else "done"), show_header=False)
        table.add_column(style="bold")
        table.add_column(justify="right")
        reasons = ", ".join(f"{r} {n}" for r, n in sorted(self.invalid_reasons.items()))
        for name, value in (
            ("group", self.group + (" (resumed)" if self.resumed else "")),
            ("events", f"{self.events:,} of {self.total:,}"),
            ("  activities", f"{self.activities:,}"),
            ("  follows", f"{self.follows:,}"),
            ("  skipped (other users)", f"{self.skipped:,}"),
            ("  dead/invalid", f"{self.invalid:,}" + (f" ({reasons})" if reasons else "")),
            ("timeline rows written", f"{self.rows:,}"),
            ("chunks high / low", f"{self.chunks_high:,} / {self.chunks_low:,}"),
            ("rows published (via kafka)", f"{self.published_rows:,}"),
            ("elapsed", f"{self.elapsed:.1f} s"),
            ("events/s", f"{self.events_per_s:,.0f}"),
            ("rows/s", f"{self.rows_per_s:,.0f}"),
        ):
            table.add_row(name, value)
        return table


class CommitMark(NamedTuple):
    """The commit metadata of the replay group: which replay, running or done."""

    target: str
    state: str  # "running" | "done"
    description: str

    @classmethod
    def of(cls, plan: ReplayPlan, state: str) -> CommitMark:
        return cls(plan.target, state, plan.description)

    def encode(self) -> str:
        return f"{_METADATA_PREFIX}{self.target} {self.state} {self.description}"

    @classmethod
    def decode(cls, metadata: str | None) -> CommitMark | None:
        if not metadata or not metadata.startswith(_METADATA_PREFIX):
            return None
        target, _, rest = metadata[len(_METADATA_PREFIX) :].partition(" ")
        state, _, description = rest.partition(" ")
        return cls(target, state, description)


def resumable(plan: ReplayPlan, metadata: Iterable[str | None]) -> str | None:
    """Given the metadata of the group's commits: the description of the unfinished replay that
    ``plan`` resumes, or ``None`` to start afresh. Raises ``ReplayConflict`` when an unfinished
    replay of other options (or commits that are not a replay's) hold the group."""
    marks = [CommitMark.decode(m) for m in metadata]
    unfinished = [m for m in marks if m is None or m.state != "done"]
    if not unfinished:
        return None
    other = next((m for m in unfinished if m is None or m.target != plan.target), None)
    if other is not None or unfinished[0] is None:
        was = other.description if other is not None else "not a fanout replay"
        raise ReplayConflict(
            f"consumer group {plan.group!r} holds an unfinished replay ({was}) that differs from this "
            f"one ({plan.description}); pass --reset (reset=True) to abandon it and start this one, "
            "--group for a separate one, or run the unfinished one again to finish it"
        )
    return unfinished[0].description


class ProgressBar:
    """Events done of total, %, events/s, rows written, elapsed and ETA on the console (stderr
    by default). Disabled, every method does nothing."""

    def __init__(self, console: Console | None, *, enabled: bool = True) -> None:
        self._console = console
        self._enabled = enabled
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def start(self, total: int) -> None:
        if self._enabled:
            self._bar = _progress(self._console)
            self._bar.start()
            self._task = self._bar.add_task("replay", total=total, rows=0)

    def advance(self, summary: ReplaySummary) -> None:
        self._update(completed=summary.events, rows=summary.rows)

    def set_total(self, total: int) -> None:
        self._update(total=total)

    def finish(self, summary: ReplaySummary) -> None:
        self._update(completed=summary.events, total=max(summary.total, summary.events), rows=summary.rows)

    def stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()

    def _update(self, **fields: Any) -> None:
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, **fields)


class _RateColumn(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.0f} ev/s" if speed else "- ev/s", style="cyan")


def _progress(console: Console | None) -> Progress:
    return Progress(
        TextColumn("[bold]replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        _RateColumn(),
        TextColumn("{task.fields[rows]:,} rows"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=console or Console(stderr=True),
        speed_estimate_period=10,
    )
