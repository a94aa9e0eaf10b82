"""Feed ids: one feed per (kind, user), e.g. ``timeline:42`` and ``user:42``."""

from __future__ import annotations

from collections.abc import Sequence


def feed_id(kind: str, user: str) -> str:
    return f"{kind}:{user}"



def feed_ids(kinds: Sequence[str], users: Sequence[str]) -> list[str]:
    """``[feed_id(kind, user) for user in users for kind in kinds]``, built in one pass."""
    if len(kinds) == 1:
        prefix = feed_id(kinds[0], "")
        return [prefix + user for user in users]
    return [feed_id(kind, user) for user in users for kind in kinds]
