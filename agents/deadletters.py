"""Dead letters: records an agent cannot process go to the ``dead`` topic, with why and where
they came from in headers (see agents/README.md for the header names)."""

from __future__ import annotations

import logging
from typing import Any

from fanout.errors import InvalidEvent
from fanout.kafka import Acks
from fanout.settings import Settings

from . import metrics

log = logging.getLogger("fanout.agents")

ERROR_HEADER_LIMIT = 2000


class DeadLetters:
    """Produces rejected records to the dead-letter topic, with why and where they came from."""

    def __init__(self, producer: Any, settings: Settings, role: str) -> None:
        self.producer = producer
        self.topic = settings.topic("dead")
        self.role = role
        self.acks = Acks()
        self.count = 0

    async def send(self, record: Any, error: InvalidEvent) -> None:
        reason = error.reason
        headers = [
            ("fanout-reason", reason.encode()),
            ("fanout-error", str(error)[:ERROR_HEADER_LIMIT].encode()),
            ("fanout-source-topic", str(record.topic).encode()),
            ("fanout-source-partition", str(record.partition).encode()),
            ("fanout-source-offset", str(record.offset).encode()),
            ("fanout-source-timestamp", str(record.timestamp).encode()),
            ("fanout-agent", self.role.encode()),
        ]
        self.acks.add(await self.producer.send(self.topic, value=record.value, key=record.key, headers=headers))
        self.count += 1
        metrics.DEAD_LETTERS.labels(self.role, reason).inc()
        metrics.EVENTS.labels(self.role, "dead").inc()
        log.warning(
            "%s: dead-lettered %s[%d]@%d (%s): %s",
            self.role, record.topic, record.partition, record.offset, reason, error,
        )
