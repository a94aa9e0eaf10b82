"""fanout: Kafka-native activity feeds.

    from fanout import Fanout, MemoryStore

    async with Fanout(MemoryStore()) as feeds:
        await feeds.follow("7", "42")
        await feeds.add(actor="42", verb="pin", object="pin:1", target="board:3")
        page = await feeds.read("7")

In production, read with ``Fanout(await CassandraStore.connect(Settings.from_env()))`` and produce
with ``Producer``/``SyncProducer``. Those three load the Kafka and Cassandra drivers on first use,
so ``import fanout`` stays light for the eager mode.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__
from .activity import Activity
from .aggregation import Group, GroupPage
from .codec import ActivityEvent, ChunkMessage, FollowEvent
from .core import Fanout
from .errors import (
    ConfigError,
    FanoutError,
    ForeignActivity,
    InvalidEvent,
    StoreError,
    UnknownActivity,
    UnknownVersion,
)
from .followers import ActiveWindowPolicy, FollowerSource, Priority, follower_hook
from .grouping import GroupingRule
from .memory import MemoryStore
from .notifications import Counts, Notification, NotificationPage
from .pushing import ChunkSink, PlanResult
from .settings import Settings
from .store import Edge, FollowerRow, Key, RegistryEntry, Store, TimelineWrite

if TYPE_CHECKING:
    from .cassandra import CassandraStore
    from .producer import Delivery, Producer, SyncProducer

_LAZY = {
    "CassandraStore": "fanout.cassandra",
    "Delivery": "fanout.producer",
    "Producer": "fanout.producer",
    "SyncProducer": "fanout.producer",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'fanout' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


__all__ = [
    "ActiveWindowPolicy",
    "Activity",
    "ActivityEvent",
    "CassandraStore",
    "ChunkMessage",
    "ChunkSink",
    "ConfigError",
    "Counts",
    "Delivery",
    "Edge",
    "Fanout",
    "FanoutError",
    "FollowEvent",
    "FollowerRow",
    "FollowerSource",
    "ForeignActivity",
    "Group",
    "GroupPage",
    "GroupingRule",
    "InvalidEvent",
    "Key",
    "MemoryStore",
    "Notification",
    "NotificationPage",
    "PlanResult",
    "Priority",
    "Producer",
    "RegistryEntry",
    "Settings",
    "Store",
    "StoreError",
    "SyncProducer",
    "TimelineWrite",
    "UnknownActivity",
    "UnknownVersion",
    "__version__",
    "follower_hook",
]
