"""Writers scale across processes: one high writer, then three, during a large fanout.

The fanout's first half is published; once one writer has written a fifth of the whole, two new
processes start, and the second half is published when both hold partitions. They join the group,
its partitions rebalance at a batch boundary (the batch in progress and its commit finish before a
partition moves), and the fanout completes: every timeline equals the reference, and the chunk
messages the writers processed add up to the chunks the planner produced, plus at most one batch
per commit a rebalance refused (re-delivered to the new owner, an idempotent rewrite).
"""

from __future__ import annotations

import re
from functools import partial

import pytest

from tests.cluster.conftest import Cluster
from tests.cluster.workload import StarFanout, agent, alive, note, stop_all, tails
from tests.integration.pipeline_helpers import WorkerProcess, pipeline, wait_drained, wait_for

pytestmark = [pytest.mark.cluster, pytest.mark.integration]

FOLLOWERS = 2000
ACTIVITIES = 20
_ASSIGNED = re.compile(r"partitions assigned: (.+)")


async def _joined(writers: list[WorkerProcess]) -> bool:
    return all("high[" in _last_assignment(w.log()) for w in writers)


def _last_assignment(log: str) -> str:
    found = _ASSIGNED.findall(log)
    return found[-1] if found else ""


async def test_high_writers_scale_from_one_to_three_mid_fanout(
    cluster: Cluster, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = cluster.settings(batch_max_records=10, high_partitions=6)
    star = StarFanout(settings, followers=FOLLOWERS, activities=ACTIVITIES, active_every=1)  # all HIGH
    async with pipeline(settings) as store:
        await star.follow(store)
        planner = agent(settings, "planner")
        writers = [agent(settings, "writer", "--priority", "high", name="writer-high-0")]
        procs = [planner, *writers]
        try:
            half = len(star.events) // 2
            await star.publish(star.events[:half])
            before = await star.wait_written(star.chunks // 5, 600, "a fifth of the fanout written by one writer")
            note(f"{before} of {star.chunks} chunks written by one writer: starting two more")
            writers += [agent(settings, "writer", "--priority", "high", name=f"writer-high-{i}") for i in (1, 2)]
            procs = [planner, *writers]
            # the rest once both have partitions: on a fast box the first half can drain before a new
            # process has started and joined, and the new writers would then have nothing to write
            await wait_for(partial(_joined, writers[1:]), 300, "the two new writers assigned partitions")
            await star.publish(star.events[half:])
            await wait_drained(settings, within=900, roles=["planner", "writer-high"])
            assert not alive(procs), tails(procs)
            assignments = {w.name: _last_assignment(w.log()) for w in writers}
        finally:
            stopped = await stop_all(procs)
        assert all(code == 0 for code, _, _ in stopped.values()), f"{stopped}\n{tails(procs)}"
        with capsys.disabled():
            print(f"\n[cluster] writers scaled 1 -> 3 after {before}/{star.chunks} chunks: {assignments}; "
                  f"agents (exit code, batches, chunks) {stopped}")

        # the three writers share the six partitions, two each
        assert all(a.count("high[") == 2 for a in assignments.values()), assignments
        processed = [stopped[w.name][2] for w in writers]
        assert all(n > 0 for n in processed), processed  # each new writer took part in the fanout
        refused = sum(w.log().count("commit failed (rebalance)") for w in writers)
        assert star.chunks <= sum(processed) <= star.chunks + refused * settings.batch_max_records, (
            processed, refused)
        assert await star.written() == star.chunks
        assert await star.wrong_feeds(store) == []
