"""``make bench``: fanout's benchmark suite on the real Kafka broker and Cassandra node.

    python benchmarks/run.py                  every case, 3 runs each (longer than --quick)
    python benchmarks/run.py --quick          smaller inputs, 3 runs each (42 minutes on a loaded 2-core box)
    python benchmarks/run.py --cases 1,3,7    some cases (1 ceiling, 2 eager memory, 3 pipeline,
                                              4 priority isolation, 5 chunk sweep, 6 large account,
                                              7 Stream Framework baseline, 8 follows, 9 replay, P profiles)
    python benchmarks/run.py --fresh-stack    every case on a freshly started broker and node (this
                                              checkout's own stack only: it wipes their data)

Writes ``benchmarks/results/<stamp>.json`` (with a top-level ``summary`` of numbers), ``<stamp>.md``,
``<stamp>-*.png`` and ``<stamp>-profile.txt``; prints the table. Exits 1 when a case failed.
See ``benchmarks/README.md`` for how to read it. Each case is a module of ``benchmarks/cases/``;
what they share is in ``benchmarks/harness/``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import traceback
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]  # no top-level `pipeline` etc.
sys.path.insert(0, str(_HERE.parent))

from rich.console import Console  # noqa: E402

from benchmarks.cases import (  # noqa: E402
    case1_ceiling,
    case2_eager,
    case3_pipeline,
    case4_priority,
    case5_chunks,
    case6_large,
    case7_baseline,
    case8_follows,
    case9_replay,
    casep_profiles,
)
from benchmarks.harness import pipeline, plots, report  # noqa: E402
from benchmarks.harness.context import RESULTS, Context  # noqa: E402
from benchmarks.harness.processes import reachable, service_pids  # noqa: E402
from benchmarks.harness.profiles import worker_profiles  # noqa: E402
from benchmarks.harness.stack import (  # noqa: E402
    QUIET_CORES,
    FreshStack,
    StackRefused,
    pid_file_pids,
    wait_for_coordinator,
    wait_for_quiet_node,
    worktrees,
)
from benchmarks.harness.stores import drop_keyspaces, wait_for_cassandra  # noqa: E402
from benchmarks.harness.summary import summarize, summary_runs  # noqa: E402
from fanout import Settings  # noqa: E402

Case = Callable[[Context], Awaitable[dict[str, Any]]]
ORDER = ["1", "2", "P", "3", "4", "6", "7", "5", "8", "9"]  # 3-8 share one worker set; 5 restarts the planner;
# 8 adds follow edges to the shared graph, so it runs after every case that counts deliveries of that graph
CASES: dict[str, Case] = {
    "1": case1_ceiling.run,
    "2": case2_eager.run,
    "3": case3_pipeline.run,
    "4": case4_priority.run,
    "5": case5_chunks.run,
    "6": case6_large.run,
    "7": case7_baseline.run,
    "8": case8_follows.run,
    "9": case9_replay.run,
    "P": casep_profiles.run,
}
PIPELINE_CASES = {"3", "4", "5", "7", "8"}


def _context(args: argparse.Namespace, console: Console, settings: Settings) -> Context:
    return Context(quick=args.quick, repeats=args.repeats, console=console, settings=settings,
                   high_writers=args.high_writers, low_writers=args.low_writers,
                   follows_workers=args.follows_workers, keep=args.keep, large=args.large_followers,
                   profile_workers=args.profile_workers)


async def main(args: argparse.Namespace, wanted: list[str]) -> int:
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # leader moves of fresh topics are retried
    logging.getLogger("cassandra").setLevel(logging.ERROR)
    console = Console()
    # every case measures the push path: hybrid fanout would pull case 6's accounts (benchmarks/hybrid.py)
    settings = Settings.from_env().replace(store="memory", pull_threshold=0)
    kafka_host, _, kafka_port = settings.kafka_bootstrap.partition(":")
    stack: FreshStack | None = None
    stack_note = "the running broker and node, as they are (shared: not restarted)"
    if args.fresh_stack:
        stack = FreshStack()
        try:
            stack_note = "fresh broker and node before every case: " + stack.check_owned(
                settings.kafka_bootstrap, (settings.cassandra_hosts[0], settings.cassandra_port))
        except StackRefused as exc:
            console.print(f"[red]{exc}[/]")
            return 2
    else:
        for name, host, port in (("Cassandra", settings.cassandra_hosts[0], settings.cassandra_port),
                                 ("Kafka", kafka_host, int(kafka_port or 9092))):
            if not reachable(host, port):
                console.print(f"[red]{name} is not reachable on {host}:{port}: run `make up` first (or "
                              "--fresh-stack to let this run start its own)[/]")
                return 2
    ctx = _context(args, console, settings)
    stamp = datetime.now().strftime("%Y-%m-%d-%H%M%S") + ("-quick" if args.quick else "")
    ctx.stamp = stamp
    RESULTS.mkdir(parents=True, exist_ok=True)
    reason = pipeline.missing()
    ctx.pipeline_ok = reason is None
    results: dict[str, Any] = {"stamp": stamp, "quick": args.quick, "repeats": ctx.repeats, "run_id": ctx.run_id,
                               "machine": report.machine(), "stack": stack_note, "settings": repr(settings),
                               "summary": {}, "summary_runs": {}, "cases": {}}
    started = time.perf_counter()
    console.print(f"[bold]fanout benchmarks[/] run {ctx.run_id}: cases {','.join(wanted)}, "
                  f"{'quick' if args.quick else 'full'}, {ctx.repeats} runs each; {stack_note}")
    try:
        for key in [k for k in ORDER if k in wanted]:
            t = time.perf_counter()
            load = os.getloadavg()[0]
            ctx.log(f"[bold]case {key}[/]: {_summary(CASES[key])} (load average {load:.1f})")
            settled: dict[str, float] = {}
            try:
                if key in PIPELINE_CASES and reason:
                    raise RuntimeError(f"the pipeline cannot run here: {reason}")
                settled = await ready(ctx, stack, int(kafka_port or 9092))
                result = await CASES[key](ctx)
            except Exception as exc:  # one case failing does not stop the suite; the run exits 1
                ctx.log(f"[red]case {key} FAILED: {type(exc).__name__}: {exc}[/]")
                (ctx.work / f"case{key}-error.txt").write_text(traceback.format_exc())
                result = {"title": f"case {key}", "error": f"{type(exc).__name__}: {exc}"}
                if key in PIPELINE_CASES:
                    await pipeline.close(ctx)
            result["elapsed_s"] = round(time.perf_counter() - t, 1)
            result["load_average"] = [round(load, 2), round(os.getloadavg()[0], 2)]
            result["node_before_case"] = settled  # the wait for the node to settle, its CPU rate then
            results["cases"][key] = result
            ctx.log(f"case {key} done in {result['elapsed_s']:.0f}s")
    finally:
        await pipeline.close(ctx)
        if not ctx.keep:
            await drop_keyspaces(settings, ctx.keyspaces)
    if args.profile_workers:
        results["worker_profiles"] = worker_profiles(ctx)
    results["cases"] = {k: results["cases"][k] for k in sorted(results["cases"], key=lambda k: (k == "P", k))}
    results["summary"] = summarize(results["cases"])
    results["summary_runs"] = summary_runs(results["cases"])
    results["elapsed_s"] = round(time.perf_counter() - started, 1)
    pngs: list[str] = []
    if not args.no_plots:
        try:
            pngs = plots.plot(results, RESULTS, stamp)
        except Exception as exc:  # a plot that cannot be drawn must not lose the run's numbers
            results["plots_error"] = f"{type(exc).__name__}: {exc}"
            console.print(f"[red]the plots failed ({results['plots_error']}); the results are written without them[/]")
    results["plots"] = pngs
    report.write_json(RESULTS / f"{stamp}.json", results)
    report.write_markdown(RESULTS / f"{stamp}.md", results, pngs)
    report.print_table(console, results)
    console.print(f"wrote benchmarks/results/{stamp}.json, {stamp}.md" + "".join(f", {p}" for p in pngs)
                  + f" in {results['elapsed_s'] / 60:.1f} min")
    failed = [k for k, c in results["cases"].items() if "error" in c]
    if failed:
        console.print(f"[red]case(s) {', '.join(failed)} failed: see their error above and in the results[/]")
    return 1 if failed else 0


async def ready(ctx: Context, stack: FreshStack | None, kafka_port: int) -> dict[str, float]:
    """Before a case: with a fresh stack, stop the pipeline's workers and restart the broker and node on
    empty data; then wait for the node to take a session and for the group coordinator, as the
    agents do (raises, and the case fails loudly, when either does not come), and for the node to
    settle (``wait_for_quiet_node``: the compactions of the previous case's data). Returns that wait
    and the node's CPU rate after it."""
    if stack is not None:
        await pipeline.close(ctx)  # its workers and topics do not survive the restart
        ctx.log(f"fresh stack: restarting the broker and node on empty data (restart {stack.restarts + 1})")
        await asyncio.to_thread(stack.restart)
        ctx.data_wiped()
    waited = await wait_for_cassandra(ctx.settings)
    waited += await wait_for_coordinator(ctx.settings)
    if waited > 1:
        ctx.log(f"the node and the group coordinator answered after {waited:.1f}s")
    ctx.service_pids = (stack.pids() if stack is not None else
                        service_pids(ctx.settings.cassandra_port, kafka_port) or pid_file_pids(worktrees()))
    settle_s, cores = await wait_for_quiet_node(ctx.service_pids.get("cassandra"))
    if cores >= QUIET_CORES:
        ctx.log(f"[yellow]the node still burns {cores:.2f} cores after {settle_s:.0f}s (compactions?): the case "
                "runs on a busy node[/]")
    elif settle_s > 5:
        ctx.log(f"the node settled after {settle_s:.0f}s ({cores:.2f} cores)")
    return {"settle_s": round(settle_s, 1), "node_cores": round(cores, 3)}


def _summary(case: Case) -> str:
    """The first line of a case's docstring."""
    return case.__doc__.strip().splitlines()[0] if case.__doc__ else ""


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="benchmarks/run.py", description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default=",".join(sorted(CASES, key=lambda k: (k == "P", k))),
                        help="comma separated: 1-9 and P (default: all)")
    parser.add_argument("--quick", action="store_true", help="smaller inputs")
    parser.add_argument("--repeats", type=int, default=3, help="runs per measurement (default 3)")
    parser.add_argument("--high-writers", type=int, default=2, help="pipeline: high writer processes (2)")
    parser.add_argument("--low-writers", type=int, default=1, help="pipeline: low writer processes (1)")
    parser.add_argument("--follows-workers", type=int, default=1, help="case 8: follows agent processes (1)")
    parser.add_argument("--large-followers", type=int, default=0,
                        help="case 6: followers of the account run through the pipeline (default 200000, "
                             "quick 20000; 1000000 adds several minutes)")
    parser.add_argument("--profile-workers", action="store_true",
                        help="run the pipeline's workers under cProfile (slower; writes <stamp>-worker-profile.txt)")
    parser.add_argument("--fresh-stack", action="store_true",
                        help="restart the broker and node on empty data before every case (scripts/services.sh "
                             "clean-data + up); only when this checkout started them or none runs yet")
    parser.add_argument("--no-plots", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the keyspaces and topics (debugging)")
    return parser.parse_args(argv)


def cli() -> int:
    args = parse()
    wanted = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in wanted if c not in CASES]
    if unknown:
        print(f"unknown case(s) {unknown}; choose from {sorted(CASES)}", file=sys.stderr)
        return 2
    if args.repeats < 3:
        print(f"note: {args.repeats} runs per measurement; the summary's medians want at least 3", file=sys.stderr)
    return asyncio.run(main(args, wanted))

if __name__ == "__main__":
    sys.exit(cli())
