"""A run's edge writes as few driver requests: partitions grouped by replica set, no server.

``follow_requests`` is what ``CassandraStore.set_follows`` sends; the cells it writes are those of
``set_follow`` edge by edge (``tests/integration/test_follow_runs_cassandra.py`` checks them on a
node). Here: every row once, each batch one replica set, a partition's rows in one batch, the caps.
"""

from __future__ import annotations

from collections.abc import Hashable
from types import SimpleNamespace
from typing import Any

from cassandra.query import BatchStatement

from fanout.cassandra.batching import REPLICA_BATCH_MAX_BYTES, REPLICA_BATCH_ROWS
from fanout.cassandra.follow_runs import follow_groups, follow_requests, partition_runs

from .test_cassandra_batching import Prepared

S = SimpleNamespace(follow_out=Prepared("out"), follow_in=Prepared("in"), raise_active_until=Prepared("until"))


def rows_of(group: list[Any]) -> list[tuple[str, tuple[Any, ...]]]:
    return [(bound.name, bound.values) for bound in group]


def partition(name: str, values: tuple[Any, ...]) -> str:
    return str(values[1] if name == "in" else values[3] if name == "out" else values[2])  # out: follower


def test_a_run_of_ten_follows_on_one_node_is_one_request_with_every_row() -> None:
    followees = {f"star{n}": 100 + n for n in range(10)}
    groups = follow_groups(S, "me", followees, 5_000, 2)
    assert len(groups) == 1  # was 11: the follower's batch and one request per followee
    assert sorted(rows_of(groups[0])) == sorted(
        [("out", (at, at, 3, "me", f)) for f, at in followees.items()]  # partition 2 + 1 (rows.decided_in)
        + [("in", (at, f, "me")) for f, at in followees.items()]
        + [("until", (5_000, 5_000, f, "me")) for f in followees]
    )
    requests = follow_requests(S, "me", followees, 5_000)
    assert len(requests) == 1 and isinstance(requests[0], BatchStatement)
    assert len(requests[0]._statements_and_parameters) == 30
    without = follow_groups(S, "me", followees, 0)  # no last activity: no active_until rows
    assert sorted(name for group in without for name, _ in rows_of(group)) == ["in"] * 10 + ["out"] * 10


def test_batches_hold_one_replica_set_and_each_partition_whole_under_the_caps() -> None:
    def node_of(key: str) -> Hashable:
        return sum(key.encode()) % 3

    followees = {f"u{n}": n for n in range(150)}
    groups = follow_groups(S, "me", followees, 9, replicas=node_of)
    rows = [row for group in groups for row in rows_of(group)]
    assert len(rows) == 150 * 3 and len(set(rows)) == len(rows)  # every row once
    where: dict[str, int] = {}
    for n, group in enumerate(groups):
        keys = [partition(name, values) for name, values in rows_of(group)]
        assert len({node_of(k) for k in keys}) == 1
        assert len(group) <= REPLICA_BATCH_ROWS
        for key in keys:
            if key != "me":  # the follower's 150 rows exceed a batch; a followee's 2 rows do not
                assert where.setdefault(key, n) == n
    assert len(groups) < 150 / 5  # batched, not a request per followee


def test_partition_runs_cut_between_partitions_and_by_bytes() -> None:
    parts = [[(f"p{p}r{r}", 10) for r in range(3)] for p in range(5)]
    assert [len(g) for g in partition_runs(parts, 7, 10_000)] == [6, 6, 3]  # never splits a 3-row partition
    assert [len(g) for g in partition_runs([[("big", 10)] * 9], 4, 10_000)] == [4, 4, 1]  # a partition over the cap
    assert [len(g) for g in partition_runs([[("big", 10)] * 9, [("next", 10)] * 2], 4, 10_000)] == [4, 4, 3]
    heavy = [[(f"h{p}", REPLICA_BATCH_MAX_BYTES // 2)] for p in range(3)]
    assert [len(g) for g in partition_runs(heavy, 40, REPLICA_BATCH_MAX_BYTES)] == [2, 1]
