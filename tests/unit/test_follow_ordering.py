"""The rule that orders follow events (``fanout.graph.edge_timestamp``) and the follows agent's test
of a record's key (``keyed_by_follower``), without a server."""

from __future__ import annotations

import zlib
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from fanout import Edge
from fanout.agents.follows import keyed_by_follower
from fanout.graph import edge_timestamp


def test_an_event_of_the_followers_partition_always_wins() -> None:
    assert edge_timestamp(500, None, in_order=True, following=True) == 500  # a new edge: the clock
    assert edge_timestamp(500, Edge(True, 100), in_order=True, following=True) == 500
    assert edge_timestamp(100, Edge(False, 100), in_order=True, following=True) == 101  # same millisecond: after it
    assert edge_timestamp(7, Edge(True, 10**15), in_order=True, following=True) == 10**15 + 1  # a clock far behind


def test_an_event_of_another_partition_counts_only_when_newer() -> None:
    assert edge_timestamp(500, None, in_order=False, following=True) == 500
    assert edge_timestamp(501, Edge(False, 500), in_order=False, following=True) == 501
    assert edge_timestamp(500, Edge(False, 500), in_order=False, following=True) is None  # a tie: it stays
    assert edge_timestamp(499, Edge(True, 500), in_order=False, following=True) is None
    assert edge_timestamp(500, Edge(True, 500), in_order=False, following=False) is None  # not its own decision


def test_an_event_of_another_partition_applies_again_its_own_stored_decision() -> None:
    """A retry after a failure between the edge write and the copies (or deletes) finds the
    event's own decision stored: it is applied again at its clock, not taken for a lost one."""
    assert edge_timestamp(500, Edge(True, 500), in_order=False, following=True) == 500
    assert edge_timestamp(500, Edge(False, 500), in_order=False, following=False) == 500


@given(st.lists(st.integers(0, 10**6), min_size=1, max_size=30))
def test_a_partition_applied_again_in_order_ends_with_its_last_event_deciding(clocks: list[int]) -> None:
    """Whatever the clocks, each event of the partition gets a newer timestamp than the one before,
    also when the partition is applied again (a re-delivery, a replay) on top of the stored edge."""
    stored: Edge | None = None
    for _ in range(2):
        for n, clock in enumerate(clocks):
            at = edge_timestamp(clock, stored, in_order=True, following=True)
            assert at is not None and (stored is None or at > stored.at)
            stored = Edge(n % 2 == 0, at)
    assert stored is not None and stored.following == ((len(clocks) - 1) % 2 == 0)


@given(st.text(min_size=1, max_size=40), st.integers(1, 64))
def test_a_record_keyed_by_its_follower_is_in_order_in_any_partition(follower: str, partitions: int) -> None:
    """Each client's default partitioner puts one key in one partition, but not the same one:
    Java's murmur2, librdkafka's CRC32 (kcat, confluent-kafka, node-rdkafka), Sarama's FNV-1a.
    The key decides, not a partition recomputed with one client's hash."""
    key = follower.encode()
    crc32 = (zlib.crc32(key) & 0xFFFFFFFF) % partitions  # librdkafka's consistent partitioner
    for partition in {0, crc32, partitions - 1}:
        assert keyed_by_follower(SimpleNamespace(key=key, partition=partition), follower)


def test_a_record_under_another_key_or_none_is_not_in_order() -> None:
    for key in (None, b"", b"bob", "ann".encode("utf-16"), b"ann ", b"Ann"):
        assert not keyed_by_follower(SimpleNamespace(key=key, partition=0), "ann")
