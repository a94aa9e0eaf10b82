"""Eager mode behaviours beyond the store contract: hooks, conflicts, cursors, the demo."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from fanout import (
    ChunkMessage,
    Fanout,
    InvalidEvent,
    MemoryStore,
    Priority,
    Settings,
    UnknownActivity,
    follower_hook,
)
from fanout.cli import main
from fanout.codec import ActivityEvent, activity_event, remove_event


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[ChunkMessage] = []

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks.append(chunk)


async def test_a_follower_hook_replaces_the_graph() -> None:
    def get_user_follower_ids(user: str) -> Mapping[Priority, list[str]]:
        return {Priority.HIGH: [f"h{i}" for i in range(150)], Priority.LOW: [f"l{i}" for i in range(30)]}

    sink = Recorder()
    fanout = Fanout(MemoryStore(), Settings(), followers=follower_hook(get_user_follower_ids), sink=sink)
    result = await fanout.handle_activity(_event(actor="a", object="1"))
    assert result.feeds == 180
    assert [(c.priority, len(c.feeds)) for c in sink.chunks] == [("high", 100), ("high", 50), ("low", 30)]
    assert sink.chunks[0].feeds[0] == "timeline:h0"


async def test_async_hook_and_several_feed_kinds() -> None:
    async def hook(user: str) -> Mapping[str, list[str]]:
        return {"low": ["x", "y"]}

    sink = Recorder()
    settings = Settings(feed_kinds=("timeline", "notifications"))
    fanout = Fanout(MemoryStore(), settings, followers=follower_hook(hook), sink=sink)
    await fanout.handle_activity(_event(actor="a", object="1"))
    assert sink.chunks[0].feeds == ["timeline:x", "notifications:x", "timeline:y", "notifications:y"]


async def test_an_id_cannot_be_taken_over_by_another_actor() -> None:
    fanout = Fanout(MemoryStore())
    await fanout.add(actor="a", verb="pin", object="1", id="shared")
    with pytest.raises(InvalidEvent, match="already belongs to actor 'a'") as caught:
        await fanout.add(actor="b", verb="pin", object="2", id="shared")
    assert caught.value.reason == "conflict"
    with pytest.raises(InvalidEvent, match="belongs to actor 'a', not 'b'"):
        await fanout.remove("shared", actor="b")
    assert [a.id for a in await fanout.read("a", kind="user")] == ["shared"]


async def test_remove_before_add_wins_in_the_planner() -> None:
    fanout = Fanout(MemoryStore())
    await fanout.follow("f", "a")
    assert await fanout.remove("later", actor="a") is None
    result = await fanout.handle_activity(remove_event("later", actor="a"))
    assert result.activity is None and "unknown activity" in result.skipped
    added = await fanout.handle_activity(_event(actor="a", object="1", id="later"))
    assert added.skipped == "removed before it was added"
    assert await fanout.read("f") == []
    assert await fanout.read("a", kind="user") == []


async def test_unknown_cursor_is_a_clear_error() -> None:
    fanout = Fanout(MemoryStore())
    with pytest.raises(UnknownActivity, match="unknown activity id 'nope' in cursor"):
        await fanout.read("u", before="nope")


async def test_publishing_and_reading_make_a_user_high_priority() -> None:
    sink = Recorder()
    store = MemoryStore()
    fanout = Fanout(store, sink=sink)
    await fanout.follow("reader", "star")
    await fanout.follow("poster", "star")
    await fanout.follow("idle", "star")
    await fanout.read("reader", touch=True)
    await fanout.handle_activity(_event(actor="poster", object="p"))
    await fanout.handle_activity(_event(actor="star", object="s"))
    by_priority = {c.priority: sorted(c.feeds) for c in sink.chunks if c.activity.actor == "star"}
    assert by_priority == {"high": ["timeline:poster", "timeline:reader"], "low": ["timeline:idle"]}


async def test_trim_keeps_feeds_bounded_while_writing() -> None:
    fanout = Fanout(MemoryStore(), Settings(max_length=10, trim_every=5))
    await fanout.follow("f", "a")
    for i in range(40):
        await fanout.add(actor="a", verb="v", object=str(i), time=f"2026-01-01T00:00:{i:02d}Z")
    feed = await fanout.read("f", limit=100)
    assert 10 <= len(feed) <= 14
    assert [a.object for a in feed[:10]] == [str(i) for i in range(39, 29, -1)]


def test_demo_runs_and_reports_deliveries(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--users", "400", "--activities", "30"]) == 0
    out = capsys.readouterr().out
    assert "deliveries per second" in out
    assert "timeline of" in out


def _event(**fields: str) -> ActivityEvent:
    fields.setdefault("verb", "pin")
    return activity_event(fields)


async def test_a_chunk_still_in_flight_loses_to_an_unfollow() -> None:
    """Activities and follows travel on different topics: an add chunk planned before the
    unfollow may reach the writer after it, and must not bring the entry back."""
    sink = Recorder()
    store = MemoryStore()
    planner = Fanout(store, sink=sink)  # chunks are held back, as if in flight
    await planner.follow("f", "a")
    await planner.handle_activity(_event(actor="a", object="late", time="2026-01-01T00:00:00Z"))
    assert len(sink.chunks) == 1
    eager = Fanout(store)
    await eager.unfollow("f", "a", at=1)  # an unfollow dated before the activity, even
    await eager.writer.write_chunks(sink.chunks)  # the in-flight chunk lands late
    assert await eager.read("f") == []
    await eager.follow("f", "a", at=2)  # following again brings it back
    assert [a.object for a in await eager.read("f")] == ["late"]


async def test_follower_hooks_typed_with_dicts_fit() -> None:
    """mypy checks this file: a hook typed ``-> dict[Priority, list[str]]`` (or str keys) is accepted."""

    def by_priority(user: str) -> dict[Priority, list[str]]:
        return {Priority.HIGH: ["h1"], Priority.LOW: ["l1", "l2"]}

    async def by_name(user: str) -> dict[str, list[str]]:
        return {"low": ["l1"]}

    for hook, expected in ((follower_hook(by_priority), 3), (follower_hook(by_name), 1)):
        fanout = Fanout(MemoryStore(), Settings(), followers=hook, sink=Recorder())
        assert (await fanout.handle_activity(_event(actor="a", object="1"))).feeds == expected
    with pytest.raises(TypeError, match="not a mapping"):
        bad = follower_hook(lambda user: ["not", "a", "mapping"])  # type: ignore[arg-type,return-value]
        await Fanout(MemoryStore(), Settings(), followers=bad, sink=Recorder()).handle_activity(
            _event(actor="a", object="2"))


async def test_reading_a_feed_writes_nothing() -> None:
    """Issue 10.11: a read is a read; marking a reader active is one explicit call."""
    store = MemoryStore()
    fanout = Fanout(store)
    await fanout.read("reader")
    assert await store.last_active("reader") == 0
    await fanout.mark_active("reader")
    first = await store.last_active("reader")
    assert first > 0
    await fanout.mark_active("reader")  # fresh: not written again (at most about twice a day)
    await fanout.read("reader", touch=True)  # the opt-in goes through the same method
    assert await store.last_active("reader") == first
