"""``fanout.cassandra.batching``: timeline writes as bound statements and per-feed batches, no server.

The prepared statements are fakes whose ``bind`` returns a statement remembering its values.
"""

from __future__ import annotations

from typing import Any

from cassandra.query import UNSET_VALUE, BatchStatement, BatchType, SimpleStatement
from hypothesis import given
from hypothesis import strategies as st

from fanout import Activity, TimelineWrite
from fanout.cassandra import BATCH_MAX_BYTES, BATCH_MAX_STATEMENTS
from fanout.cassandra.batching import bound_writes, feed_groups, row_deletes, timeline_requests


class Bound(SimpleStatement):  # type: ignore[misc]  # the driver has no type hints
    def __init__(self, name: str, values: tuple[Any, ...]) -> None:
        super().__init__(name)
        self.name = name
        self.values = values


class Prepared:
    def __init__(self, name: str) -> None:
        self.name = name

    def bind(self, values: tuple[Any, ...]) -> Bound:
        return Bound(self.name, values)


STATEMENTS = {"insert": Prepared("insert"), "delete": Prepared("delete")}


def act(n: int, *, target: str | None = None, extra: dict[str, Any] | None = None) -> Activity:
    return Activity(id=f"a{n}", actor="u1", verb="pin", object=f"pin:{n}", ts=1_000 + n, target=target, extra=extra)


def test_inserts_send_null_target_and_extra_unset_and_extra_as_json() -> None:
    plain, full = act(1), act(2, target="board:3", extra={"tags": ["x"], "n": 1})
    writes = [TimelineWrite("timeline:7", plain, 5), TimelineWrite("timeline:7", full, 6)]
    (first, plain_cost), (second, full_cost) = bound_writes(writes, **STATEMENTS)
    assert first.name == second.name == "insert"
    assert first.values == ("timeline:7", 1_001, "a1", "u1", "pin", "pin:1", UNSET_VALUE, UNSET_VALUE, 5)
    assert second.values == ("timeline:7", 1_002, "a2", "u1", "pin", "pin:2", "board:3", '{"tags":["x"],"n":1}', 6)
    assert full_cost - plain_cost == len("board:3") + len('{"tags":["x"],"n":1}')


def test_a_remove_is_a_delete_at_its_write_timestamp() -> None:
    [(bound, _)] = bound_writes([TimelineWrite("timeline:7", act(1), 99, remove=True)], **STATEMENTS)
    assert (bound.name, bound.values) == ("delete", (99, "timeline:7", 1_001, "a1"))


def test_a_trim_deletes_each_row_at_its_own_write_time_in_batches_of_the_partition() -> None:
    rows = [(1_000 + n, f"a{n}", 7_000 + n) for n in range(BATCH_MAX_STATEMENTS + 1)]
    batch, single = row_deletes("timeline:7", rows, delete=STATEMENTS["delete"])
    assert isinstance(batch, BatchStatement) and batch.batch_type == BatchType.UNLOGGED and batch.is_idempotent
    assert len(batch) == BATCH_MAX_STATEMENTS
    assert (single.name, single.values) == ("delete", (7_100, "timeline:7", 1_100, "a100"))
    assert list(row_deletes("timeline:7", [], delete=STATEMENTS["delete"])) == []


def test_concurrent_mode_sends_one_statement_per_write_in_order() -> None:
    writes = [TimelineWrite(f"timeline:{n % 3}", act(n), n) for n in range(7)]
    requests = list(timeline_requests("concurrent", writes, **STATEMENTS))
    assert [(r.values[0], r.values[2]) for r in requests] == [(w.feed, w.activity.id) for w in writes]


def test_partition_batch_mode_sends_a_lone_write_plain_and_several_as_one_unlogged_batch() -> None:
    writes = [TimelineWrite("timeline:1", act(1), 1)] + [TimelineWrite("timeline:2", act(n), n) for n in range(5)]
    lone, batch = timeline_requests("partition_batch", writes, **STATEMENTS)
    assert isinstance(lone, Bound) and lone.values[0] == "timeline:1"
    assert isinstance(batch, BatchStatement)
    assert batch.batch_type == BatchType.UNLOGGED
    assert batch.is_idempotent
    assert len(batch) == 5


def test_groups_are_capped_by_statements_and_by_bytes() -> None:
    many = [TimelineWrite("timeline:1", act(n), n) for n in range(2 * BATCH_MAX_STATEMENTS + 1)]
    assert [len(g) for g in feed_groups(many, **STATEMENTS)] == [BATCH_MAX_STATEMENTS, BATCH_MAX_STATEMENTS, 1]
    blob = {"blob": "x" * (BATCH_MAX_BYTES // 3)}  # a little over a third of the cap with the other columns
    big = [TimelineWrite("timeline:1", act(n, extra=blob), n) for n in range(5)]
    assert [len(g) for g in feed_groups(big, **STATEMENTS)] == [2, 2, 1]
    huge = [TimelineWrite("timeline:1", act(n, extra={"blob": "x" * BATCH_MAX_BYTES}), n) for n in range(2)]
    assert [len(g) for g in feed_groups(huge, **STATEMENTS)] == [1, 1]  # over the cap alone: sent alone


writes_strategy = st.lists(
    st.builds(
        lambda feed, n, size, remove: TimelineWrite(f"timeline:{feed}", act(n, extra={"b": "x" * size}), n, remove),
        st.integers(0, 3),
        st.integers(0, 10_000),
        st.integers(0, 6_000),
        st.booleans(),
    ),
    max_size=300,
)


@given(writes_strategy)
def test_groups_hold_every_write_once_one_feed_each_in_order_and_as_full_as_the_caps_allow(
    writes: list[TimelineWrite],
) -> None:
    groups = list(feed_groups(writes, **STATEMENTS))
    feeds = list(dict.fromkeys(w.feed for w in writes))  # in order of first appearance
    assert list(dict.fromkeys(_feed(g[0]) for g in groups)) == feeds
    for feed in feeds:
        mine = [g for g in groups if _feed(g[0]) == feed]  # one after the other (checked above)
        expected = list(bound_writes([w for w in writes if w.feed == feed], **STATEMENTS))
        assert [b.values for g in mine for b in g] == [b.values for b, _ in expected]
        costs = iter(cost for _, cost in expected)
        sizes = [[next(costs) for _ in g] for g in mine]
        for i, group in enumerate(mine):
            assert {_feed(b) for b in group} == {feed}
            assert len(group) <= BATCH_MAX_STATEMENTS
            assert len(group) == 1 or sum(sizes[i]) <= BATCH_MAX_BYTES
            if i + 1 < len(mine):  # cut only where the next write would break a cap
                assert len(group) == BATCH_MAX_STATEMENTS or sum(sizes[i]) + sizes[i + 1][0] > BATCH_MAX_BYTES


def _feed(bound: Bound) -> str:
    return str(bound.values[0] if bound.name == "insert" else bound.values[1])
