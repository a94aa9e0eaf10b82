"""Case 6: plan one activity of ``ACTOR`` from Cassandra in a process of its own, so that nothing
else (the bench's Kafka clients) shares its memory. Prints JSON: planning seconds, RSS growth
(peak RSS during planning minus RSS before), tracemalloc peak of a second, traced planning.

    python -m benchmarks.plan_probe KEYSPACE ACTOR FOLLOWERS
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
import tracemalloc
from datetime import UTC, datetime
from typing import Any

from fanout.codec import ActivityEvent
from fanout.core import Fanout
from fanout.settings import Settings

from .common import connect_store, rss_kib


class _CountingSink:
    def __init__(self) -> None:
        self.feeds = 0

    async def send(self, chunk: Any) -> None:
        self.feeds += len(chunk.feeds)


async def main(keyspace: str, actor: str, followers: int) -> dict[str, Any]:
    settings = Settings.from_env()
    store = await connect_store(settings, keyspace, migrate=False)
    try:
        def event(tag: str, who: str = actor) -> ActivityEvent:
            return ActivityEvent(actor=who, verb="post", object=f"{who}:{tag}:{time.time()}",
                                 time=datetime.now(UTC))

        sink = _CountingSink()
        fanout = Fanout(store, settings, sink=sink)
        await fanout.handle_activity(event("warm", "probe-warm-up"), None)  # statements, connections
        gc.collect()
        sink.feeds = 0
        before, _ = rss_kib()
        peak = before
        done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not done.is_set():
                peak = max(peak, rss_kib()[0])
                await asyncio.sleep(0.01)

        sampler = asyncio.create_task(sample())
        started = time.perf_counter()
        await fanout.handle_activity(event("timed"), None)
        seconds = time.perf_counter() - started
        done.set()
        await sampler
        assert sink.feeds == followers, (sink.feeds, followers)
        gc.collect()
        tracemalloc.start()
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        started = time.perf_counter()
        await fanout.handle_activity(event("traced"), None)
        traced_s = time.perf_counter() - started
        traced_peak = tracemalloc.get_traced_memory()[1] - base
        tracemalloc.stop()
    finally:
        await store.close()
    return {"seconds": seconds, "rss_before_kib": before, "rss_growth_kib": peak - before,
            "tracemalloc_peak_kib": traced_peak / 1024, "traced_seconds": traced_s}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))))
