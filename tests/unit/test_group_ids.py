"""A group's id is a hash of its rule's key: stable, and two keys never share one (marks are kept
by id: a shared id marked one group and left the other unseen for good)."""

from __future__ import annotations

from fanout import Fanout, MemoryStore
from fanout.grouping import group_id


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
