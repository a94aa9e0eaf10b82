"""fanout: Kafka-native activity feeds.

    from fanout import Fanout, MemoryStore

    async with Fanout(MemoryStore()) as feeds:
        await feeds.follow("7", "42")
        await feeds.add(actor="42", verb="pin", object="pin:1", target="board:3")
        page = await feeds.read("7")
"""

from ._version import __version__
from .activity import Activity
from .codec import ActivityEvent, ChunkMessage, FollowEvent
from .core import ChunkSink, Fanout, PlanResult
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
from .memory import MemoryStore
from .settings import Settings
from .store import Store, TimelineWrite

__all__ = [
    "ActiveWindowPolicy",
    "Activity",
    "ActivityEvent",
    "ChunkMessage",
    "ChunkSink",
    "ConfigError",
    "Fanout",
    "FanoutError",
    "FollowEvent",
    "FollowerSource",
    "ForeignActivity",
    "InvalidEvent",
    "MemoryStore",
    "PlanResult",
    "Priority",
    "Settings",
    "Store",
    "StoreError",
    "TimelineWrite",
    "UnknownActivity",
    "UnknownVersion",
    "__version__",
    "follower_hook",
]
