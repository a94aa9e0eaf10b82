"""Planning: every follower in exactly one chunk of its priority, chunk sizes bounded."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from fanout.followers import Priority
from fanout.planner import Chunker, plan_chunks

pages = st.lists(
    st.tuples(st.sampled_from([Priority.HIGH, Priority.LOW]), st.lists(st.integers(0, 10**6), max_size=300)),
    max_size=12,
)


@given(pages=pages, chunk_size=st.integers(1, 250))
def test_every_follower_in_exactly_one_chunk_of_its_priority(pages, chunk_size):  # type: ignore[no-untyped-def]
    numbered = []  # make ids unique per page position so duplicates in the input stay visible
    for n, (priority, ids) in enumerate(pages):
        numbered.append((priority, [f"{n}:{i}:{x}" for i, x in enumerate(ids)]))
    chunks = list(plan_chunks(numbered, chunk_size))
    placed: Counter[tuple[Priority, str]] = Counter()
    for priority, feeds in chunks:
        assert 1 <= len(feeds) <= chunk_size
        placed.update((priority, f) for f in feeds)
    expected = Counter((priority, f) for priority, ids in numbered for f in ids)
    assert placed == expected
    # only the last chunk of each priority may be partial
    for priority in (Priority.HIGH, Priority.LOW):
        sizes = [len(f) for p, f in chunks if p is priority]
        assert all(s == chunk_size for s in sizes[:-1])


def test_250_followers_make_100_100_50() -> None:
    chunks = list(plan_chunks([(Priority.LOW, [str(i) for i in range(250)])], 100))
    assert [(p, len(f)) for p, f in chunks] == [(Priority.LOW, 100), (Priority.LOW, 100), (Priority.LOW, 50)]


def test_memory_is_bounded_by_the_chunk() -> None:
    chunker = Chunker(10)
    for page_no in range(1000):
        for _ in chunker.add(Priority.HIGH, [f"{page_no}:{i}" for i in range(7)]):
            pass
        assert all(len(partial) < 10 for partial in chunker._partial.values())
