"""Where an agent starts on partitions its group never committed (``fanout.agents.offsets.settle``):
partitions added to a topic while the group runs start at their earliest offset; any other
non-empty partition without an offset is refused until the operator says where to start."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition

from fanout.agents.offsets import NoCommittedOffset, settle

T = "fanout.activities"


def tps(*partitions: int) -> set[TopicPartition]:
    return {TopicPartition(T, p) for p in partitions}


class Consumer:
    """A group's committed offsets and each partition's log (begin, end), as aiokafka answers them."""

    def __init__(self, committed: dict[int, int], logs: dict[int, tuple[int, int]]) -> None:
        self.group = {TopicPartition(T, p): o for p, o in committed.items()}
        self.logs = {TopicPartition(T, p): span for p, span in logs.items()}
        self.commits: list[dict[TopicPartition, int]] = []
        self.seeks: dict[TopicPartition, int] = {}

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {tp.partition for tp in self.logs if tp.topic == topic}

    async def committed(self, tp: TopicPartition) -> int | None:
        return self.group.get(tp)

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.logs[tp][0] for tp in partitions}

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self.logs[tp][1] for tp in partitions}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks[tp] = offset

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.append(dict(offsets))
        self.group.update(offsets)


async def run(
    consumer: Consumer, mine: set[TopicPartition], start_from: str | None = None
) -> dict[TopicPartition, int]:
    return await settle(consumer, mine, group="g", role="planner", start_from=start_from)


async def test_partitions_added_at_the_end_start_at_their_earliest_offset() -> None:
    # 0-3 committed by the group (some by another member); 4 and 5 appended since, with records
    consumer = Consumer({0: 7, 1: 3, 2: 9, 3: 4}, {p: (0, 10) for p in range(6)})
    settled = await run(consumer, tps(1, 4, 5))
    assert consumer.commits == [{TopicPartition(T, 4): 0, TopicPartition(T, 5): 0}]
    assert settled == {TopicPartition(T, 1): 3, TopicPartition(T, 4): 0, TopicPartition(T, 5): 0}


@pytest.mark.parametrize(
    ("committed", "mine"),
    [
        ({}, (0, 1, 2, 3)),  # a group that never committed (or whose offsets expired)
        ({0: 0, 2: 0}, (1, 3)),  # a new group's members settling at once: one pinned its empty partitions
        ({0: 5, 2: 5, 3: 5}, (1,)),  # a partition without an offset between committed ones
    ],
)
async def test_other_partitions_without_an_offset_are_refused(committed: dict[int, int], mine: tuple[int, ...]) -> None:
    consumer = Consumer(committed, {p: (0, 10) for p in range(4)})
    with pytest.raises(NoCommittedOffset, match="--from earliest"):
        await run(consumer, tps(*mine))
    assert consumer.commits == []  # nothing decided for the operator


async def test_empty_partitions_are_pinned_at_their_end_and_do_not_count_as_the_groups() -> None:
    # one settle: partition 0 is empty (pinned at its end), 1 holds records: refused, nothing pinned
    consumer = Consumer({}, {0: (5, 5), 1: (0, 10)})
    with pytest.raises(NoCommittedOffset):
        await run(consumer, tps(0, 1))
    assert consumer.commits == []
    only_empty = Consumer({}, {0: (5, 5), 1: (0, 10)})
    assert await run(only_empty, tps(0)) == {TopicPartition(T, 0): 5}


async def test_the_operators_choice_wins() -> None:
    consumer = Consumer({}, {0: (0, 10), 1: (2, 8)})
    await run(consumer, tps(0, 1), start_from="latest")
    assert consumer.commits == [{TopicPartition(T, 0): 10, TopicPartition(T, 1): 8}]
