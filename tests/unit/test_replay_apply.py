"""The replay applies records exactly as the live agents do (no server)."""

from __future__ import annotations

import json
from types import SimpleNamespace

from fanout import Fanout, MemoryStore, Settings
from fanout.activity import now_micros
from fanout.agents.replay_apply import BatchApplier
from fanout.agents.replay_progress import ReplaySummary
from fanout.agents.replay_sinks import BufferedWriterSink


async def test_a_record_without_a_timestamp_gets_the_clock_not_a_negative_time() -> None:
    """Kafka reports a missing timestamp as -1: the planner and the follows agent then use their clock;
    the replay must too (it used to turn -1 into a time before 1970)."""
    settings = Settings()
    store = MemoryStore()
    fanout = Fanout(store, settings)
    summary = ReplaySummary(group="g")
    sink = BufferedWriterSink(fanout.writer, summary)
    fanout.sink = sink
    applier = BatchApplier(settings, fanout, sink, summary, None)
    event = {"actor": "ann", "verb": "pin", "object": "o1"}
    record = SimpleNamespace(topic=settings.topic("activities"), partition=0, offset=0, timestamp=-1,
                             key=b"ann", value=json.dumps(event).encode(), headers=[])
    before = now_micros()
    await applier.process([record])
    (activity,) = await fanout.read("ann", kind="user")
    assert activity.ts >= before
