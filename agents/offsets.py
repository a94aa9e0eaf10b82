"""Where an agent starts on a partition its group never committed: never a silent guess.

Kafka's ``auto_offset_reset`` would decide on its own: ``earliest`` re-fans a whole history kept
forever through the live pipeline (a group whose committed offsets expired after
``offsets.retention.minutes`` of inactivity, 7 days by default), ``latest`` skips it unseen. So
when partitions are assigned, ``settle(...)`` looks at each one without a committed offset:

* empty: the group is pinned at its end now (committed), so what is published later is processed
  whatever happens to this member;
* not empty, ``start_from="earliest"`` or ``"latest"`` (``fanout worker ... --from``): pinned
  there, with a log line saying how many records that processes or skips;
* not empty, no ``start_from``: ``NoCommittedOffset``, one line naming the partitions, their
  record counts and the two choices; the agent exits 2 without consuming anything.

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
