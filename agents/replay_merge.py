"""The timestamp merge of the replayed partitions (both topics) into one history.

Order: both topics merged by record timestamp
    The replay buffers records of every partition and always processes the one with the smallest
    (timestamp, topic, partition, offset) among the partition heads: both topics are merged into
    one history in timestamp order (``ranks`` orders the topics on equal timestamps), and the
    records of one partition stay in offset order (one actor's activities, one follower's follows
    and unfollows, as produced). A replay into a store without a follow graph therefore re-creates
    the graph as it stood when each activity was planned, and ``since``/offsets read as "the
    history from then on". Why the end state does not depend on that order anyway: see
    ``replay_apply``.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any, Final

from aiokafka import TopicPartition

__all__ = ["Merger"]

_BUFFER_PER_PARTITION: Final = 2_000  # records buffered per partition before it is paused


class Merger:
    """Reads assigned partitions in ``[start, end)`` and yields records in timestamp order.

    A record is released only when every unfinished partition has a buffered head, so the
    smallest head really is the smallest next record. Partitions that reached their end, or
    buffered ``_BUFFER_PER_PARTITION`` records, are paused.
    """

    def __init__(self, consumer: Any, ranks: Mapping[str, int], fetch_ms: int) -> None:
        self.consumer = consumer
        self.ranks = ranks
        self.fetch_ms = fetch_ms
        self.end: dict[TopicPartition, int] = {}
        self.buffers: dict[TopicPartition, deque[Any]] = {}
        self.fetched_all: dict[TopicPartition, bool] = {}
        self.paused: set[TopicPartition] = set()

    def add(self, tp: TopicPartition, start: int, end: int) -> None:
        self.end[tp] = end
        self.buffers[tp] = deque()
        self.fetched_all[tp] = start >= end
        self.consumer.seek(tp, start)
        self._set_paused(tp, self.fetched_all[tp])

    def extend(self, tp: TopicPartition, end: int) -> None:
        """Move the end of a partition (catching up); records past the old end are re-fetched."""
        old = self.end[tp]
        if end <= old:
            return
        self.end[tp] = end
        if self.fetched_all[tp]:
            self.fetched_all[tp] = False
            self.consumer.seek(tp, old)
        self._set_paused(tp, False)

    def _set_paused(self, tp: TopicPartition, paused: bool) -> None:
        if paused and tp not in self.paused:
            self.consumer.pause(tp)
            self.paused.add(tp)
        elif not paused and tp in self.paused:
            self.consumer.resume(tp)
            self.paused.discard(tp)

    def _key(self, record: Any) -> tuple[int, int, int, int]:
        return (record.timestamp, self.ranks[record.topic], record.partition, record.offset)

    async def next_batch(self, max_records: int) -> list[Any]:
        """Up to ``max_records`` records in merged order; ``[]`` once every partition is done."""
        out: list[Any] = []
        while len(out) < max_records:
            blocked: list[TopicPartition] = []
            while len(out) < max_records:
                best: TopicPartition | None = None
                best_key: tuple[int, int, int, int] | None = None
                blocked = []
                for tp, buffer in self.buffers.items():
                    if buffer:
                        key = self._key(buffer[0])
                        if best_key is None or key < best_key:
                            best, best_key = tp, key
                    elif not self.fetched_all[tp]:
                        blocked.append(tp)
                if blocked or best is None:
                    break
                buffer = self.buffers[best]
                out.append(buffer.popleft())
                if len(buffer) < _BUFFER_PER_PARTITION // 2 and not self.fetched_all[best]:
                    self._set_paused(best, False)
            if not blocked:
                return out  # full, or every partition done
            if out and len(out) >= max_records // 4:
                return out  # enough to work on; fetch the rest with the next batch
            await self._fetch(blocked)
        return out

    async def _fetch(self, blocked: list[TopicPartition]) -> None:
        fetched = await self.consumer.getmany(timeout_ms=self.fetch_ms)
        for tp, records in fetched.items():
            if tp not in self.buffers or self.fetched_all[tp]:
                continue
            end = self.end[tp]
            buffer = self.buffers[tp]
            for record in records:
                if record.offset >= end:
                    self.fetched_all[tp] = True
                    break
                buffer.append(record)
            if records and records[-1].offset + 1 >= end:
                self.fetched_all[tp] = True
            if self.fetched_all[tp] or len(buffer) >= _BUFFER_PER_PARTITION:
                self._set_paused(tp, True)
        for tp in blocked:
            if not self.buffers[tp] and not self.fetched_all[tp] and await self.consumer.position(tp) >= self.end[tp]:
                self.fetched_all[tp] = True  # gaps at the end (control records, compaction)
                self._set_paused(tp, True)
