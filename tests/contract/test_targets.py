"""Targeted activities (`to`, issue 15) on both stores: the target feeds get the activity through
the followers' chunks and priorities, the registry keeps the targets, a remove reaches them."""

from __future__ import annotations

from collections.abc import Callable

import msgspec
import pytest

from fanout import ChunkMessage, Fanout, InvalidEvent, Settings, Store
from fanout.codec import decode_activity_event
from fanout.targets import MAX_TARGETS

Names = Callable[[str], str]


class Recorder:
    def __init__(self) -> None:
        self.chunks: list[ChunkMessage] = []

    async def send(self, chunk: ChunkMessage) -> None:
        self.chunks.append(chunk)


async def test_targets_receive_the_activity_and_lose_it_with_the_remove(store: Store, unique_name: Names) -> None:
    owner, fan, liker = unique_name("owner"), unique_name("fan"), unique_name("liker")
    feeds = Fanout(store)
    await feeds.follow(fan, liker)
    to = [f"notification:{owner}", f"aggregated:{owner}"]
    liked = await feeds.add(actor=liker, verb="like", object="post:1", to=to)
    assert liked.to == (f"notification:{owner}", f"aggregated:{owner}")
    for kind in ("notification", "aggregated"):
        [got] = await feeds.read(owner, kind=kind)
        assert got.id == liked.id and got.to is None  # feeds hold the activity without its targets
    assert [a.id for a in await feeds.read(fan)] == [liked.id]  # followers as before
    entry = await store.get_activity(liked.id)
    assert entry is not None and entry.activity is not None and entry.activity.to == liked.to

    await feeds.remove(liked.id, actor=liker)
    assert await feeds.read(owner, kind="notification") == []
    assert await feeds.read(owner, kind="aggregated") == []
    assert await feeds.read(fan) == []


async def test_a_target_gets_its_users_priority_in_chunks_of_chunk_size(store: Store, unique_name: Names) -> None:
    active, idle, actor = unique_name("active"), unique_name("idle"), unique_name("actor")
    sink = Recorder()
    feeds = Fanout(store, Settings(chunk_size=2), sink=sink)
    await feeds.mark_active(active)
    targets = [f"notification:{active}", f"timeline:{active}", f"aggregated:{active}", f"notification:{idle}"]
    event = {"actor": actor, "verb": "like", "object": "o", "to": [*targets, targets[0]]}  # a duplicate
    result = await feeds.handle_activity(decode_activity_event(msgspec.json.encode(event)))
    assert [(c.priority, c.feeds) for c in sink.chunks] == [
        ("high", targets[:2]), ("high", targets[2:3]), ("low", targets[3:])
    ]
    assert all(c.op == "add" and c.activity.to is None for c in sink.chunks)
    assert result.chunks == 3 and result.feeds == 4


async def test_unknown_target_kinds_and_malformed_targets_are_refused(store: Store, unique_name: Names) -> None:
    feeds = Fanout(store)
    actor = unique_name("actor")
    with pytest.raises(InvalidEvent) as unknown:
        await feeds.add(actor=actor, verb="like", object="o", to=["inbox:7"])
    assert unknown.value.reason == "target" and "$.to[0]" in str(unknown.value)
    for bad in (["7"], [":7"], ["notification:"], [f"notification:{i}" for i in range(MAX_TARGETS + 1)]):
        with pytest.raises(InvalidEvent) as malformed:
            await feeds.add(actor=actor, verb="like", object="o", to=bad)
        assert malformed.value.reason == "schema" and "$.to" in str(malformed.value)
    assert await feeds.read(actor, kind="user") == []  # nothing was planned


async def test_a_replay_keeps_the_targets_it_was_accepted_with(store: Store, unique_name: Names) -> None:
    """Targets are checked against the kinds when an activity is first planned; a replay (the
    registry knows the id) fans out to the registered targets, even under other settings (a
    replay with `--kind`, a kind dropped since)."""
    actor, owner = unique_name("actor"), unique_name("owner")
    event = decode_activity_event(msgspec.json.encode(
        {"actor": actor, "verb": "like", "object": "o", "id": unique_name("id"), "to": [f"inbox:{owner}"]}))
    first = await Fanout(store, Settings(feed_kinds=("timeline", "inbox"))).handle_activity(event)
    sink = Recorder()
    replayed = await Fanout(store, sink=sink).handle_activity(event)  # default kinds: no `inbox`
    assert first.activity == replayed.activity and replayed.activity is not None
    assert [c.feeds for c in sink.chunks] == [[f"inbox:{owner}"]]
