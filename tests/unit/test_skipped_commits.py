"""An idle partition whose consumer moved past records it never returns (a transactional
producer's commit and abort markers, aborted records) gets that position committed, so the
group's lag comes back to 0; a partition with a batch in flight or failing does not."""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError

from fanout.agents.partitions import Partitions

A, B, C, D = (TopicPartition("t", n) for n in range(4))


class Consumer:
    """The consumer calls ``commit_skipped`` makes, with the positions and high waters given."""

    def __init__(self, positions: dict[TopicPartition, int], high_waters: dict[TopicPartition, int | None]) -> None:
        self.positions, self.high_waters = positions, high_waters
        self.commits: list[dict[TopicPartition, int]] = []
        self.asked: list[TopicPartition] = []
        self.fail_commits = 0

    def assignment(self) -> set[TopicPartition]:
        return set(self.positions)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.high_waters.get(tp)

    async def position(self, tp: TopicPartition) -> int:
        self.asked.append(tp)
        return self.positions[tp]

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        if self.fail_commits:
            self.fail_commits -= 1
            raise CommitFailedError("rebalanced")
        self.commits.append(dict(offsets))


class Owner:
    role = "writer-test"

    def __init__(self, consumer: Consumer) -> None:
        self.consumer = consumer
        self.kafka = type("Kafka", (), {"is_down": False})()


def partitions(consumer: Consumer, committed: dict[TopicPartition, int]) -> Partitions:
    parts = Partitions(Owner(consumer))  # type: ignore[arg-type]
    parts.committed.update(committed)
    return parts


async def look(parts: Partitions) -> None:
    """``commit_skipped`` as if its interval had passed since it last looked."""
    parts._skipped_at = float("-inf")
    await parts.commit_skipped()


async def test_an_idle_partition_past_skipped_records_is_committed_once() -> None:
    # A: moved past a commit marker; B: up to date; C: records fetched, not yet returned
    # (position at the committed offset); D: assigned, never fetched (no high water known)
    consumer = Consumer({A: 4, B: 7, C: 2, D: 0}, {A: 4, B: 7, C: 9, D: None})
    parts = partitions(consumer, {A: 3, B: 7, C: 2, D: 0})
    await look(parts)
    assert consumer.commits == [{A: 4}]
    assert sorted(consumer.asked) == [A, C]  # no position read where nothing lies beyond the offset
    assert parts.committed == {A: 4, B: 7, C: 2, D: 0}
    await look(parts)
    assert consumer.commits == [{A: 4}]  # nothing new to commit


async def test_partitions_in_flight_failing_or_revoked_are_left_alone() -> None:
    consumer = Consumer({A: 5, B: 5}, {A: 5, B: 5, C: 5})
    parts = partitions(consumer, {A: 1, B: 1, C: 1})  # C: revoked (no longer assigned)
    never: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    parts.work[A] = type("W", (), {"task": never})()
    parts.failing[B] = object()  # type: ignore[assignment]
    await look(parts)
    assert consumer.commits == [] and consumer.asked == []
    never.cancel()


async def test_a_failed_commit_is_tried_again_at_the_next_call() -> None:
    consumer = Consumer({A: 4}, {A: 4})
    consumer.fail_commits = 1
    parts = partitions(consumer, {A: 3})
    await look(parts)
    assert consumer.commits == [] and parts.committed == {A: 3}
    await look(parts)
    assert consumer.commits == [{A: 4}] and parts.committed == {A: 4}


async def test_a_batch_commit_records_the_offset() -> None:
    """What a partition task commits is what ``commit_skipped`` compares with afterwards."""
    consumer = Consumer({A: 10}, {A: 10})
    parts = partitions(consumer, {A: 0})
    parts.agent.health = type("H", (), {"progress": lambda self: None})()
    await parts._commit(A, 10)
    assert parts.committed == {A: 10} and consumer.commits == [{A: 10}]
    await look(parts)
    assert consumer.commits == [{A: 10}]


async def test_it_looks_at_most_once_per_interval() -> None:
    consumer = Consumer({A: 4}, {A: 4})
    parts = partitions(consumer, {A: 3})
    await parts.commit_skipped()  # created just now: not yet
    assert consumer.asked == []
    await look(parts)
    consumer.positions[A] = consumer.high_waters[A] = 6
    await parts.commit_skipped()  # looked just now
    assert consumer.commits == [{A: 4}]


async def test_a_partition_leaving_is_forgotten_and_its_last_commit_not_recorded() -> None:
    consumer = Consumer({A: 10}, {A: 10})
    parts = partitions(consumer, {A: 0})
    parts.agent.health = type("H", (), {"progress": lambda self: None})()
    await parts.drain({A}, grace=0)
    await parts._commit(A, 10)  # a batch of the revoked partition finishing late
    assert parts.committed == {}


async def test_no_look_while_kafka_is_down() -> None:
    consumer = Consumer({A: 4}, {A: 4})
    parts = partitions(consumer, {A: 3})
    parts.agent.kafka.is_down = True  # type: ignore[misc]
    await look(parts)
    assert consumer.asked == [] and consumer.commits == []


async def test_a_position_or_commit_that_does_not_come_is_left_for_the_next_look(monkeypatch: Any) -> None:
    """aiokafka waits for a valid position, and retries a commit until the coordinator answers:
    the agent's loop must not wait with them (it would miss its stop, its renewals, its work)."""
    import fanout.agents.partitions as module

    monkeypatch.setattr(module, "SKIPPED_COMMIT_WAIT_S", 0.05)
    consumer = Consumer({A: 4, B: 9}, {A: 4, B: 9})
    parts = partitions(consumer, {A: 3, B: 8})
    real_position = consumer.position

    async def stuck_position(tp: TopicPartition) -> int:
        if tp == A:
            await asyncio.Event().wait()  # never set
        return await real_position(tp)

    consumer.position = stuck_position  # type: ignore[method-assign]
    await asyncio.wait_for(look(parts), 1)
    assert consumer.commits == [{B: 9}]

    async def stuck_commit(offsets: dict[TopicPartition, int]) -> None:
        await asyncio.Event().wait()  # never set

    consumer.position = real_position  # type: ignore[method-assign]
    consumer.commit = stuck_commit  # type: ignore[method-assign]
    await asyncio.wait_for(look(parts), 1)
    assert parts.committed == {A: 3, B: 9}  # A's commit did not come: tried again at the next look


async def test_a_partition_that_fails_for_good_during_a_look_is_not_committed() -> None:
    """Its position is past the failed batch; the batch's task forgets the partition."""
    consumer = Consumer({A: 15, B: 9}, {A: 15, B: 9})
    parts = partitions(consumer, {A: 10, B: 8})
    real_position = consumer.position

    async def position(tp: TopicPartition) -> int:
        if tp == B:
            parts.committed.pop(A, None)  # A's batch failed for good meanwhile (``_run``)
        return await real_position(tp)

    consumer.position = position  # type: ignore[method-assign]
    await look(parts)
    assert consumer.commits == [{B: 9}]
