"""``fanout rebuild USER`` (``Fanout.rebuild``) on the memory twin: same timeline as a full replay,
and the rebuilt timeline keeps receiving new activities."""

from __future__ import annotations

from fanout import Fanout, MemoryStore


async def test_rebuild_gives_the_same_timeline() -> None:
    async with Fanout(MemoryStore()) as feeds:
        await feeds.follow("u", "v")
        await feeds.follow("u", "w")
        for n in range(5):
            await feeds.add(actor="v" if n % 2 else "w", verb="pin", object=f"pin:{n}")
        await feeds.add(actor="x", verb="pin", object="not followed")
        before = await feeds.read("u", limit=100, touch=False)
        assert await feeds.rebuild("u") == 5
        assert await feeds.read("u", limit=100, touch=False) == before


async def test_a_rebuilt_timeline_still_receives_new_activities() -> None:
    async with Fanout(MemoryStore()) as feeds:
        await feeds.follow("u", "v")
        await feeds.add(actor="v", verb="pin", object="pin:1")
        await feeds.rebuild("u")
        await feeds.add(actor="v", verb="pin", object="pin:2")
        assert [a.object for a in await feeds.read("u", limit=10, touch=False)] == ["pin:2", "pin:1"]
