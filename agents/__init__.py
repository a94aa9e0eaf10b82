"""The Kafka pipeline of fanout: topics, the planner, writer and follows agents, and tools.

    fanout topics create                  create the five topics (idempotent)
    fanout worker planner|writer|follows  run one agent (one consumer group, one process)
    fanout worker all                     a supervisor running every agent as a subprocess
    fanout publish / feed / lag           produce events, read a feed, watch consumer lag

Every agent is driven by aiokafka with manual commits; see ``fanout.agents.base`` for why.
"""

from __future__ import annotations

ROLES = ("planner", "writer", "follows")
PRIORITIES = ("high", "low")


def group_id(prefix: str, role: str, priority: str | None = None) -> str:
    """Consumer group of an agent: ``<prefix>planner``, ``<prefix>writer-high``, ..."""
    if role == "writer":
        if priority not in PRIORITIES:
            raise ValueError(f"writer priority must be 'high' or 'low', not {priority!r}")
        return f"{prefix}writer-{priority}"
    return f"{prefix}{role}"


__all__ = ["PRIORITIES", "ROLES", "group_id"]
