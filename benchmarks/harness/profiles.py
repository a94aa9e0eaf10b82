"""cProfile results made readable: the listing, and the top functions by own time as data."""

from __future__ import annotations

import cProfile
import io
import pstats
from typing import Any, Protocol, cast

from .context import RESULTS, ROOT, Context

TOP = 12  # functions kept in the JSON per profile

# pstats.Stats keeps its table in ``stats``: (file, line, function) -> (primitive calls, calls,
# own time, cumulative time, callers). typeshed does not declare it; this states its shape.
_Func = tuple[str, int, str]
_Entry = tuple[int, int, float, float, dict[Any, Any]]


class _StatsTable(Protocol):
    stats: dict[_Func, _Entry]


def summarize(source: cProfile.Profile | str, listing: int) -> tuple[str, float, list[dict[str, Any]]]:
    """(pstats listing of the ``listing`` costliest functions, total own time in seconds, the top
    functions as rows) of a profile in memory or in a file written by ``python -m cProfile -o``."""
    out = io.StringIO()
    stats = pstats.Stats(source, stream=out)
    stats.sort_stats("tottime").print_stats(listing)
    table = cast(_StatsTable, stats).stats
    total = sum(entry[2] for entry in table.values())
    top = []
    for (filename, line, name), (_cc, nc, tt, ct, _callers) in sorted(
        table.items(), key=lambda item: item[1][2], reverse=True
    )[:TOP]:
        short = filename.split("site-packages/")[-1].split(f"{ROOT}/")[-1]
        top.append({"function": f"{short}:{line}({name})", "calls": nc, "tottime_s": round(tt, 3),
                    "share": round(tt / total, 3) if total else 0, "cumtime_s": round(ct, 3)})
    return out.getvalue(), total, top


def worker_profiles(ctx: Context) -> dict[str, Any]:
    """Summaries of the pipeline workers' cProfile files (``--profile-workers``), by role; their
    listings go to ``<stamp>-worker-profile.txt``."""
    out: dict[str, Any] = {}
    texts = []
    for path in sorted((ctx.work / "workers").glob("*.prof")):
        role = path.stem.rsplit(".", 1)[-1]
        try:
            text, total, top = summarize(str(path), listing=20)
        except (OSError, EOFError, TypeError):
            continue
        texts.append(f"==== {role} ({path.name}) ====\n{text}")
        out[role] = {"total_s": round(total, 2), "top": top}
    if texts:
        (RESULTS / f"{ctx.stamp}-worker-profile.txt").write_text("\n\n".join(texts))
    return out
