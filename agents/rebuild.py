"""``fanout rebuild USER``: rebuild single timelines from the followees' user feeds, without Kafka.

``rebuild_users(settings, users)`` runs ``Fanout.rebuild`` for each user: the timeline becomes
the newest entries of the user feeds of the accounts the user follows, what re-applying each
current follow gives (up to the follow-copy limit and max length, also below earlier trims), and
stray entries are deleted so that no later fanout add brings them back. Each follow is re-applied
at its edge's timestamp + 1, so an unfollow still in flight wins over the rebuild (``fanout.graph``).
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import partial

from fanout.core import Fanout
from fanout.settings import Settings
from fanout.store import Store

from .base import retry_store
from .replay_options import ROLE

__all__ = ["rebuild_users"]


async def rebuild_users(
    settings: Settings, users: Iterable[str], *, kind: str | None = None, store: Store | None = None
) -> dict[str, int]:
    """Rebuild each user's timeline(s) (of ``kind`` only, when given); return the entries per
    user. ``store``: default ``CassandraStore.connect(settings)``, closed at the end; a given
    store is not closed."""
    if kind is not None:
        settings = settings.replace(feed_kinds=(kind,))
    own_store = store is None
    if store is None:
        from fanout.cassandra import CassandraStore

        store = await CassandraStore.connect(settings, write_mode="replica_batch")
    try:
        fanout = Fanout(store, settings)
        return {user: await retry_store(ROLE, partial(fanout.rebuild, user)) for user in users}
    finally:
        if own_store:
            await store.close()
