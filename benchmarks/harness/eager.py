"""fanout in-process under measurement: one eager pass of a workload (cases 2, 7, P), and planner
sinks that count or keep the chunks (cases 6, P)."""

from __future__ import annotations

import gc
import time

from fanout import ChunkMessage, Fanout, Store

from .context import Context
from .inputs import events
from .workload import Workload


async def eager_pass(ctx: Context, wl: Workload, store: Store, run: int) -> tuple[int, float]:
    """(deliveries, seconds) of pass ``run`` of ``wl``: every activity handled in-process, one
    after the other, each chunk written before the next."""
    settings = ctx.settings.replace(chunk_size=wl.chunk_size)
    fanout = Fanout(store, settings)
    evs = events(wl.activities, run)
    accepted = ctx.t0_us
    gc.collect()
    started = time.perf_counter()
    deliveries = 0
    for event in evs:
        result = await fanout.handle_activity(event, accepted)
        deliveries += result.feeds + 1
    return deliveries, time.perf_counter() - started


class CountingSink:
    """A planner's sink that only counts: planning cost alone, no chunk written or sent."""

    def __init__(self) -> None:
        self.chunks = 0
        self.feeds = 0

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks += 1
        self.feeds += len(chunk.feeds)


class CollectingSink:
    """A planner's sink that keeps every chunk (to feed them to a writer afterwards)."""

    def __init__(self) -> None:
        self.chunks: list[ChunkMessage] = []

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks.append(chunk)
