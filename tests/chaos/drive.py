"""Driving a scenario: producing a planned workload at a pace, and the storm of SIGKILLs."""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence

from .kafka_io import Producer, Sent
from .model import Model
from .processes import Fleet
from .workload import Planned, record


def seeded() -> tuple[int, random.Random]:
    """A scenario's seed (``FANOUT_CHAOS_SEED`` replays one) and its random generator."""
    seed = int(os.environ.get("FANOUT_CHAOS_SEED", random.randrange(1 << 30)))
    return seed, random.Random(seed)


async def produce_paced(producer: Producer, planned: Sequence[Planned], seconds: float) -> list[Sent]:
    """Produce ``planned`` in order, spread evenly over about ``seconds`` (4 slices a second)."""
    ticks = max(1, int(seconds * 4))
    per_tick = max(1, -(-len(planned) // ticks))
    sent: list[Sent] = []
    start = time.monotonic()
    for i in range(0, len(planned), per_tick):
        part = planned[i : i + per_tick]
        sent += await producer.send_many((p.topic, p.key.encode(), p.value) for p in part)
        await asyncio.sleep(max(0.0, start + (i // per_tick + 1) * 0.25 - time.monotonic()))
    return sent


def crash_guard(fleet: Fleet) -> Callable[[], Awaitable[None]]:
    """An ``alive`` check for waits: fails once an agent crashed more often than it is restarted."""

    async def check() -> None:
        for agent in fleet.agents.values():
            if len(agent.crashes) > fleet.max_restarts:
                raise AssertionError(f"{agent.name} crash-loops ({len(agent.crashes)} exits):\n"
                                     + "\n".join(agent.crashes[-2:]))

    return check


class KillStorm:
    """``quota`` SIGKILLs of each role at random moments: each role's agents are killed one at a
    time after a random pause (about ``mean_gap`` s; short pauses hit start-up and the rebalance
    that follows a restart, longer ones fetch, write and commit), each restarted after 0-3 s."""

    def __init__(self, fleet: Fleet, rng: random.Random, roles: Sequence[str], quota: int, mean_gap: float) -> None:
        self.fleet = fleet
        self.rng = rng
        self.quota = quota
        self.mean_gap = mean_gap
        self.task = asyncio.ensure_future(asyncio.gather(*(self._role(r) for r in roles)))

    async def wait(self) -> None:
        await self.task

    async def cancel(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)

    async def _role(self, role: str) -> None:
        rng = self.rng
        kills = 0
        while kills < self.quota:
            await asyncio.sleep(rng.uniform(0.3, 2 * self.mean_gap))
            running = [a for a in self.fleet.role(role) if a.running()]
            if not running:
                continue
            agent = rng.choice(running)
            await agent.kill()
            kills += 1
            await self.fleet.restart(agent, rng.choice((0.0, 0.2, 1.0, 3.0)))


async def produce(producer: Producer, model: Model, planned: Sequence[Planned], seconds: float = 0.0) -> int:
    """Produce ``planned`` (over about ``seconds``) and feed it to the model; the count."""
    record(model, planned, await produce_paced(producer, planned, seconds))
    return len(planned)
