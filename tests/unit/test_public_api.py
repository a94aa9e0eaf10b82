"""Lock the public API: adding or removing a name is a deliberate change of this list."""

from __future__ import annotations

import fanout

EXPECTED = [
    "ActiveWindowPolicy", "Activity", "ActivityEvent", "ChunkMessage", "ChunkSink", "ConfigError", "Fanout",
    "FanoutError", "FollowEvent", "FollowerSource", "ForeignActivity", "InvalidEvent", "MemoryStore",
    "PlanResult", "Priority", "Settings", "Store", "StoreError", "TimelineWrite", "UnknownActivity",
    "UnknownVersion", "__version__", "follower_hook",
]


def test_exported_names() -> None:
    assert sorted(fanout.__all__) == sorted(EXPECTED)
    for name in fanout.__all__:
        assert hasattr(fanout, name), name


def test_errors_form_one_tree() -> None:
    for name in ("ConfigError", "InvalidEvent", "UnknownVersion", "UnknownActivity", "ForeignActivity", "StoreError"):
        assert issubclass(getattr(fanout, name), fanout.FanoutError)
    assert fanout.StoreError("x").retriable is True
    assert fanout.InvalidEvent("x").retriable is False


def test_memory_store_satisfies_the_store_protocol() -> None:
    assert isinstance(fanout.MemoryStore(), fanout.Store)
