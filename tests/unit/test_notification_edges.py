"""Notification groups at their edges: a group's id is a hash of its rule's key, stable, and two
keys never share one (marks are kept by id: a shared id marked one group and left the other unseen
for good); marking all past an activity dated ahead of the clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from fanout import Fanout, MemoryStore
from fanout.grouping import group_id
from fanout.notifications import Counts


def test_keys_whose_parts_hold_the_separator_get_ids_of_their_own() -> None:
    assert group_id(("like", "post:1\x1fx", "2026-11-27")) != group_id(("like\x1fpost:1", "x", "2026-11-27"))
    assert group_id(("a\x1f", "b")) != group_id(("a", "\x1fb"))
    assert group_id(("a\x1fb",)) != group_id(("a", "b"))  # a one-part key against a two-part one
    # the ids groups have had stay theirs (marks and clients' stored ids keep working)
    assert group_id(("like", "post:1", "2026-11-27")) == "d752a58772d2d4cfd23dbaf65368446a"


async def test_marking_one_of_two_such_groups_leaves_the_other_unseen() -> None:
    async with Fanout(MemoryStore()) as fanout:
        await fanout.add(actor="a", verb="like", object="post:1\x1fx", to=["notification:v"])
        await fanout.add(actor="b", verb="like\x1fpost:1", object="x", to=["notification:v"])
        page = await fanout.notifications("v")
        ids = [n.group.id for n in page.groups]
        assert len(set(ids)) == 2
        counts = await fanout.mark_seen("v", [ids[0]])
        assert counts.unseen == 1
        assert [n.seen for n in (await fanout.notifications("v")).groups] == [True, False]


def test_escapes_in_parts_keep_keys_apart() -> None:
    keys = [("a\x1e", "\x1fb"), ("a\x1e\x1f", "b"), ("a", "\x1e\x1fb"), ("a\x1e\x1e", "b"), ("a", "\x1e\x1eb"),
            ("a\x1e\x1fb",), ("a\x1e", "\x1e\x1fb")]
    assert len({group_id(key) for key in keys}) == len(keys)


async def test_marking_all_past_an_activity_ahead_of_the_clock_leaves_the_next_ones_unseen() -> None:
    """A post 590 s ahead (a producer's clock running fast, within the 600 s allowed) and a mark of
    all: the feed's mark took its time, so every activity of the next ten minutes read as seen."""
    now = datetime.now(UTC)
    async with Fanout(MemoryStore()) as fanout:
        await fanout.add(actor="a", verb="like", object="p1", time=(now - timedelta(seconds=5)).isoformat(),
                         to=["notification:v"])
        await fanout.add(actor="b", verb="like", object="p2", time=(now + timedelta(seconds=590)).isoformat(),
                         to=["notification:v"])
        assert await fanout.mark_read("v") == Counts(unseen=0, unread=0)
        await fanout.add(actor="c", verb="comment", object="p1", to=["notification:v"])  # now, a new group
        await fanout.add(actor="d", verb="like", object="p1", to=["notification:v"])  # newer in a marked group
        page = await fanout.notifications("v")
        assert [(n.group.verb, n.seen, n.read) for n in page.groups] == [
            ("like", True, True), ("like", False, False), ("comment", False, False)]
        assert (page.unseen, page.unread) == (2, 2)
