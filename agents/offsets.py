"""Where an agent starts on a partition its group never committed: never a silent guess.

Kafka's ``auto_offset_reset`` would decide on its own: ``earliest`` re-fans a whole history kept
forever through the live pipeline (a group whose committed offsets expired after
``offsets.retention.minutes`` of inactivity, 7 days by default), ``latest`` skips it unseen. So
when partitions are assigned, ``settle(...)`` looks at each one without a committed offset:

* empty: the group is pinned at its end now (committed), so what is published later is processed
  whatever happens to this member;
* not empty, ``start_from="earliest"`` or ``"latest"`` (``fanout worker ... --from``): pinned
  there, with a log line saying how many records that processes or skips;
* not empty, no ``start_from``, and the topic's partitions without a committed offset are the
  last ones, after partitions that have one: partitions added to the topic after the group started
  (``kafka-topics --alter --partitions`` appends them; their records were all produced since), so
  it starts at its earliest offset, with a log line. A group's offsets expire together (when the
  group has been empty for ``offsets.retention.minutes``), never one partition's alone; and where
  members of a new group settle at once, one pinning its empty partitions, the others' partitions
  without an offset lie between committed ones (round-robin assignment), not only at the end;
* not empty, no ``start_from``, and no committed offset on the topic at all:
  ``NoCommittedOffset``, one line naming the partitions, their record counts and the two choices;
  the agent exits 2 without consuming anything.

A committed offset below the partition's first offset means the topic's retention deleted
records before the group read them: logged as an error with the count (``fanout replay`` rebuilds
feeds from the topics that are kept forever), and the agent goes on from the first offset.
"""

from __future__ import annotations

import logging
from typing import Any

from aiokafka import TopicPartition

from fanout.errors import ConfigError

from . import metrics

log = logging.getLogger("fanout.agents")

START_FROM = ("earliest", "latest")


class NoCommittedOffset(ConfigError):
    """The agent's group has no committed offset on partitions that hold records."""


def _name(tp: TopicPartition) -> str:
    return f"{tp.topic}[{tp.partition}]"


async def settle(
    consumer: Any, tps: set[TopicPartition], *, group: str, role: str, start_from: str | None
) -> dict[TopicPartition, int]:
    """Pin or refuse every partition of ``tps`` that ``group`` never committed (see above); return
    the group's committed offset of each one afterwards."""
    if not tps:
        return {}
    committed = {tp: await consumer.committed(tp) for tp in sorted(tps)}
    begins = await consumer.beginning_offsets(list(tps))
    ends = await consumer.end_offsets(list(tps))
    pins: dict[TopicPartition, int] = {}
    undecided: list[str] = []
    groups_view: dict[str, list[bool]] = {}  # topic -> whether each partition has a committed offset
    for tp, offset in committed.items():
        begin, end = begins[tp], ends[tp]
        if offset is not None:
            if offset < begin:
                lost = begin - offset
                metrics.RECORDS_EXPIRED.labels(role).inc(lost)
                log.error("%s: %d records of %s were deleted by the topic's retention before group %s read them "
                          "(committed %d, the log starts at %d); feeds may miss them: see `fanout replay`",
                          role, lost, _name(tp), group, offset, begin)
                consumer.seek(tp, begin)
            continue
        if begin == end:
            pins[tp] = end
        elif start_from == "earliest":
            pins[tp] = begin
            log.warning("%s: group %s starts %s at its earliest offset %d (--from earliest): %d records to process",
                        role, group, _name(tp), begin, end - begin)
        elif start_from == "latest":
            pins[tp] = end
            log.warning("%s: group %s starts %s at its end %d (--from latest): %d records skipped",
                        role, group, _name(tp), end, end - begin)
        elif await _added(consumer, tp, committed, groups_view):
            pins[tp] = begin
            log.warning("%s: %s was added to the topic after group %s started (no committed offset, the group "
                        "has some on its other partitions): starting at its earliest offset %d, %d records to "
                        "process", role, _name(tp), group, begin, end - begin)
        else:
            undecided.append(f"{_name(tp)} ({end - begin} records)")
    if undecided:
        raise NoCommittedOffset(
            f"{role}: group {group} has no committed offset on {', '.join(undecided)}; start it once with "
            "--from earliest (process those records) or --from latest (skip them)"
        )
    if pins:
        for tp, offset in pins.items():
            consumer.seek(tp, offset)
        await consumer.commit(pins)
    return {tp: offset for tp, offset in committed.items() if offset is not None} | pins


async def _added(
    consumer: Any, tp: TopicPartition, committed: dict[TopicPartition, int | None], view: dict[str, list[bool]]
) -> bool:
    """Whether ``tp`` is among partitions added to its topic after the group started: the topic's
    partitions without a committed offset (this member's or another's) are the last ones, after at
    least one that has one. ``view`` keeps each topic's answer of one ``settle``."""
    if tp.topic not in view:
        has = []
        for partition in sorted(consumer.partitions_for_topic(tp.topic) or ()):
            other = TopicPartition(tp.topic, partition)
            has.append((committed[other] if other in committed else await consumer.committed(other)) is not None)
        view[tp.topic] = has
    has = view[tp.topic]
    first_missing = has.index(False) if False in has else len(has)
    return 0 < first_missing <= tp.partition and not any(has[first_missing:])
