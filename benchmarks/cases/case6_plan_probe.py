"""Case 6's child: plan one activity of ``ACTOR`` from Cassandra in a process of its own, so that
nothing else (the bench's Kafka clients) shares its memory. Prints JSON: planning seconds, RSS
growth (peak RSS during planning minus RSS before), tracemalloc peak of a second, traced planning.

    python -m benchmarks.cases.case6_plan_probe KEYSPACE ACTOR FOLLOWERS
"""

from __future__ import annotations

import asyncio
import gc
import json
import sys
import time
from datetime import UTC, datetime
from typing import Any

from benchmarks.harness.eager import CountingSink
from benchmarks.harness.memory import PeakRss, traced
from benchmarks.harness.stores import connect_store
from fanout import ActivityEvent, Fanout, Settings


async def main(keyspace: str, actor: str, followers: int) -> dict[str, Any]:
    settings = Settings.from_env()
    store = await connect_store(settings, keyspace, migrate=False)
    try:
        def event(tag: str, who: str = actor) -> ActivityEvent:
            return ActivityEvent(actor=who, verb="post", object=f"{who}:{tag}:{time.time()}",
                                 time=datetime.now(UTC))

        sink = CountingSink()
        fanout = Fanout(store, settings, sink=sink)
        await fanout.handle_activity(event("warm", "probe-warm-up"), None)  # statements, connections
        gc.collect()
        sink.feeds = 0
        async with PeakRss(interval=0.01) as rss:
            started = time.perf_counter()
            await fanout.handle_activity(event("timed"), None)
            seconds = time.perf_counter() - started
        assert sink.feeds == followers, (sink.feeds, followers)
        gc.collect()
        _, traced_s, traced_peak = await traced(fanout.handle_activity(event("traced"), None))
    finally:
        await store.close()
    return {"seconds": seconds, "rss_before_kib": rss.before, "rss_growth_kib": rss.growth,
            "tracemalloc_peak_kib": traced_peak / 1024, "traced_seconds": traced_s}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3])))))
