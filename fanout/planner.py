"""Planning: followers by priority -> chunks of at most ``chunk_size`` feeds per priority.

Pure and streaming. ``Chunker`` keeps one partial chunk per priority, so memory is bounded by
the chunk size, not by the follower count; 250 HIGH followers with chunk size 100 become
chunks of 100, 100 and 50.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from .followers import Priority

Chunk = tuple[Priority, list[str]]


class Chunker:
    def __init__(self, chunk_size: int) -> None:
        if chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        self.chunk_size = chunk_size
        self._partial: dict[Priority, list[str]] = {}

    def add(self, priority: Priority, ids: Sequence[str]) -> Iterator[Chunk]:
        """Take a page of follower ids; yield every chunk it fills."""
        partial = self._partial.setdefault(priority, [])
        size = self.chunk_size
        start = 0
        while start < len(ids):  # fill the partial chunk slice by slice
            take = size - len(partial)
            partial.extend(ids[start : start + take])
            start += take
            if len(partial) == size:
                yield priority, partial
                partial = self._partial[priority] = []

    def flush(self) -> Iterator[Chunk]:
        """Yield the last, partly filled chunk of each priority (HIGH first)."""
        for priority in (Priority.HIGH, Priority.LOW):
            partial = self._partial.pop(priority, None)
            if partial:
                yield priority, partial


def plan_chunks(pages: Iterable[tuple[Priority, Sequence[str]]], chunk_size: int) -> Iterator[Chunk]:
    """All chunks for a stream of follower pages."""
    chunker = Chunker(chunk_size)
    for priority, ids in pages:
        yield from chunker.add(priority, ids)
    yield from chunker.flush()
