"""Case P, profiles: where the time goes. cProfile of the eager path (on ``MemoryStore`` and on
``CassandraStore``) and of one writer batch through ``TimelineWriter``; the listings go to
``<stamp>-profile.txt``."""

from __future__ import annotations

import cProfile
import resource
import time
from collections.abc import Awaitable, Callable
from typing import Any

from benchmarks.harness.context import RESULTS, Context
from benchmarks.harness.eager import CollectingSink, eager_pass
from benchmarks.harness.inputs import edges_of, events
from benchmarks.harness.profiles import summarize
from benchmarks.harness.stores import connect_store, ensure_edges, load_memory_edges
from fanout import Fanout, MemoryStore
from fanout.writer import TimelineWriter


class Profiles:
    """The profiled sections of the case: their listings and their summaries."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.sections: dict[str, Any] = {}

    async def profile(self, label: str, work: Callable[[], Awaitable[object]]) -> None:
        prof = cProfile.Profile()
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        thread0 = time.thread_time()
        wall0 = time.perf_counter()
        prof.enable()
        await work()
        prof.disable()
        wall = time.perf_counter() - wall0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
        process_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
        text, _, top = summarize(prof, listing=25)
        self.texts.append(f"==== {label} ====\nwall {wall:.2f}s, process CPU {process_cpu:.2f}s, "
                          f"main-thread CPU {time.thread_time() - thread0:.2f}s\n{text}")
        self.sections[label] = {"wall_s": round(wall, 2), "process_cpu_s": round(process_cpu, 2),
                                "main_thread_cpu_s": round(time.thread_time() - thread0, 2), "top": top}


async def run(ctx: Context) -> dict[str, Any]:
    """cProfile of the eager path (memory and Cassandra) and of the writer's batch."""
    wl = ctx.standard_workload()
    edges = edges_of(wl, ctx.t0_us, ctx.active_window_us)
    profiles = Profiles()

    store = MemoryStore()
    await load_memory_edges(store, edges, ctx.t0_us - 1)
    await profiles.profile("eager path, MemoryStore", lambda: eager_pass(ctx, wl, store, 3000))

    ks = ctx.keyspace("eager")
    cstore = await connect_store(ctx.settings, ks)
    small = ctx.sf_workload()
    await ensure_edges(ctx, cstore, edges_of(small, ctx.t0_us, ctx.active_window_us))
    await profiles.profile("eager path, CassandraStore", lambda: eager_pass(ctx, small, cstore, 3001))

    # the writer: one agent batch (up to batch_max_records chunks) through TimelineWriter
    sink = CollectingSink()
    planner = Fanout(MemoryStore(), ctx.settings, sink=sink)
    await load_memory_edges(planner.store, edges, ctx.t0_us - 1)
    for event in events(wl.activities, 3002):
        await planner.handle_activity(event, ctx.t0_us)
    batch = sink.chunks[: ctx.settings.batch_max_records]
    writer = TimelineWriter(cstore, max_length=ctx.settings.max_length, trim_every=ctx.settings.trim_every)
    await profiles.profile(f"writer batch: {len(batch)} chunks, {sum(len(c.feeds) for c in batch):,} rows, "
                           "CassandraStore concurrent", lambda: writer.write_chunks(batch))
    await cstore.close()
    path = RESULTS / f"{ctx.stamp}-profile.txt"
    path.write_text("\n\n".join(profiles.texts))
    return {"title": "Profiles: where the time goes (cProfile, main thread)", "inputs": {**wl.describe()},
            "rows": [], "profile": profiles.sections, "profile_file": str(path.name),
            "notes": ["cProfile sees the main thread only; the driver's I/O thread (response decoding, "
                      "callbacks) shows up as process CPU minus main-thread CPU."]}
