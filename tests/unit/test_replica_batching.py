"""``replica_batch``: timeline writes grouped by replica set into capped UNLOGGED batches, no server."""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Any

from cassandra.query import BatchStatement

from fanout import Activity, TimelineWrite
from fanout.cassandra.batching import (
    REPLICA_BATCH_MAX_BYTES,
    REPLICA_BATCH_ROWS,
    replica_groups,
    replica_requests,
    timeline_requests,
)

from .test_cassandra_batching import STATEMENTS


def writes(seed: int) -> list[TimelineWrite]:
    rng = random.Random(seed)
    acts = [Activity(id=f"a{n}", actor="u", verb="v", object="o", ts=1_000 + n,
                     extra={"blob": "x" * rng.choice([0, 10, 3000])}) for n in range(30)]
    return [TimelineWrite(f"timeline:{rng.randint(0, 60)}", rng.choice(acts), 5, rng.random() < 0.1)
            for _ in range(700)]


def node_of(feed: str) -> Hashable:
    return int(feed.split(":")[1]) % 3  # three replica sets


def test_each_batch_holds_one_replica_set_feed_by_feed_under_the_caps() -> None:
    for seed in range(5):
        ws = writes(seed)
        groups = list(replica_groups(ws, **STATEMENTS, replicas=node_of))
        sent = [bound.values for group in groups for bound in group]
        assert len(sent) == len(ws)  # every write once
        for group in groups:
            feeds = [bound.values[0] if bound.name == "insert" else bound.values[1] for bound in group]
            assert len({node_of(f) for f in feeds}) == 1
            runs = [f for i, f in enumerate(feeds) if i == 0 or feeds[i - 1] != f]
            assert len(runs) == len(set(runs))  # a feed's rows together
            assert len(group) <= REPLICA_BATCH_ROWS
        assert len(groups) < len(ws) / 10  # batched, not row by row


def test_big_rows_cut_batches_by_bytes_and_one_node_is_one_set() -> None:
    acts = [Activity(id=f"a{n}", actor="u", verb="v", object="o", ts=n, extra={"b": "x" * 6000}) for n in range(9)]
    ws = [TimelineWrite(f"timeline:{n}", a, 1) for n, a in enumerate(acts)]
    groups = list(replica_groups(ws, **STATEMENTS, replicas=lambda feed: None))
    assert [len(g) for g in groups] == [2, 2, 2, 2, 1]  # ~12 KiB of values each, under the cap
    assert 2 * 6000 < REPLICA_BATCH_MAX_BYTES < 3 * 6000
    plain = Activity(id="p", actor="u", verb="v", object="o", ts=1)
    small = [TimelineWrite(f"timeline:{n}", plain, 1) for n in range(100)]
    requests: list[Any] = list(timeline_requests("replica_batch", small, **STATEMENTS))
    assert [len(r._statements_and_parameters) for r in requests] == [40, 40, 20]
    assert all(isinstance(r, BatchStatement) for r in requests)
    assert len(list(replica_requests(small[:1], **STATEMENTS, replicas=None))) == 1


def test_a_feed_with_many_rows_goes_in_single_partition_batches_of_up_to_100() -> None:
    plain = Activity(id="p", actor="u", verb="v", object="o", ts=1)
    copy_in = [TimelineWrite("timeline:me", Activity(id=f"c{n}", actor="u", verb="v", object="o", ts=n), 1)
               for n in range(250)]
    spread = [TimelineWrite(f"timeline:{n}", plain, 1) for n in range(50)]
    groups = list(replica_groups(spread + copy_in, **STATEMENTS, replicas=lambda feed: None))
    assert [len(g) for g in groups] == [100, 100, 50, 40, 10]
    assert {b.values[0] for g in groups[:3] for b in g} == {"timeline:me"}
