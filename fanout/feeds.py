"""Feed ids: one feed per (kind, user), e.g. ``timeline:42`` and ``user:42``."""

from __future__ import annotations


def feed_id(kind: str, user: str) -> str:
    return f"{kind}:{user}"

