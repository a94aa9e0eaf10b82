"""A large fanout for the cluster tests, its agents as real processes, and its reference.

One author, ``followers`` followers (every other one active, so both priorities carry chunks) and
``activities`` posts produced by a bare Kafka client. The reference needs no model: every
follower's timeline, and the author's own feed, must hold every post once, newest first.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from functools import partial

from aiokafka.errors import KafkaError

from fanout.activity import now_micros
from fanout.agents import group_id
from fanout.retry import retry
from fanout.settings import Settings
from fanout.store import Store
from tests.integration.pipeline_helpers import WorkerProcess, feed_ids, lags, produce_raw, wait_for

AUTHOR = "star"
T0 = datetime(2024, 5, 1, tzinfo=UTC)
_STOPPED = re.compile(r"stopped after (\d+) batches, (\d+) records")


class StarFanout:
    def __init__(self, settings: Settings, *, followers: int, activities: int, active_every: int = 2) -> None:
        self.settings = settings
        self.followers = [f"f{i:05d}" for i in range(followers)]
        self.active = set(self.followers[::active_every]) if active_every else set()
        self.events = [
            {"actor": AUTHOR, "verb": "post", "object": f"p{i}", "id": f"{AUTHOR}-{i}",
             "time": (T0 + timedelta(minutes=i)).isoformat()}
            for i in range(activities)
        ]
        self.expected = [e["id"] for e in reversed(self.events)]
        chunk = settings.chunk_size
        high, low = len(self.active), followers - len(self.active)
        self.chunks = activities * (-(-high // chunk) + -(-low // chunk))  # both priorities, ceil each
        self.rows = activities * (followers + 1)

    async def follow(self, store: Store) -> None:
        """The graph, written straight to the store (the follows agent is not under test here).
        A write the replicas did not acknowledge in time (a LOCAL_QUORUM timeout on a loaded
        machine: retriable) is sent again, as the agents would; the writes are idempotent."""
        until = now_micros() + 7 * 86_400 * 1_000_000
        sem = asyncio.Semaphore(256)

        async def one(follower: str) -> None:
            active_until = until if follower in self.active else 0
            async with sem:
                await retry(partial(store.set_follow, follower, AUTHOR, True, 1, active_until=active_until),
                            within=120.0, first_delay=0.2)

        await asyncio.gather(*(one(f) for f in self.followers))

    async def publish(self, events: list[dict[str, str]] | None = None) -> None:
        """The activity events (all of them unless ``events`` names some)."""
        chosen = self.events if events is None else events
        await produce_raw(self.settings, "activities", [(AUTHOR.encode(), json.dumps(e).encode()) for e in chosen])

    async def written(self) -> int:
        """Chunk messages the writers (both priorities) have committed. Asked of the brokers that
        answer: while one is down (the broker-kill test) the admin client may pick it and fail."""
        state = await retry(partial(lags, self.settings), retriable=lambda e: isinstance(e, KafkaError),
                            within=60.0, first_delay=0.2)
        prefix = self.settings.topic_prefix
        return sum(state.get(group_id(prefix, "writer", p), (0, 0))[0] for p in ("high", "low"))

    async def wait_written(self, at_least: int, within: float, what: str) -> int:
        async def enough() -> bool:
            return await self.written() >= at_least

        await wait_for(enough, within, what, interval=0.2)
        return await self.written()

    async def wrong_feeds(self, store: Store) -> list[tuple[str, str]]:
        """(feed, what is wrong) for every feed that is not exactly the reference."""
        sem = asyncio.Semaphore(64)
        wrong: list[tuple[str, str]] = []

        async def one(feed: str) -> None:
            async with sem:  # a read timeout on the shared 2-core box is retried, a wrong feed is not
                got = await retry(partial(feed_ids, store, feed), within=120)
            if got != self.expected:
                missing = len(set(self.expected) - set(got))
                extra = len(got) - len(set(got)) + len(set(got) - set(self.expected))
                wrong.append((feed, f"{missing} missing, {extra} extra or duplicated, order ok: {got == sorted(got)}"))

        await asyncio.gather(*(one(f"timeline:{f}") for f in self.followers), one(f"user:{AUTHOR}"))
        return wrong


def agent(settings: Settings, role: str, *args: str, name: str | None = None) -> WorkerProcess:
    """``fanout worker ROLE ARGS`` as a process. Its consumer session lasts 30 s, not 10: six JVMs
    and the agents share 2 cores here, and a member that misses its heartbeats rebalances the group."""
    return WorkerProcess(settings, role, *args, "--session-timeout-ms", "30000", name=name or role)


def agents(settings: Settings, high_writers: int = 2) -> list[WorkerProcess]:
    """The planner and the writers as separate processes (none restarts another)."""
    procs = [agent(settings, "planner")]
    procs += [agent(settings, "writer", "--priority", "high", name=f"writer-high-{i}") for i in range(high_writers)]
    procs.append(agent(settings, "writer", "--priority", "low", name="writer-low"))
    return procs


def alive(procs: list[WorkerProcess]) -> list[str]:
    """The names of the processes that exited (empty: all still run)."""
    return [f"{p.name} (exit {p.proc.returncode})" for p in procs if p.proc.poll() is not None]


async def stop_all(procs: list[WorkerProcess], within: float = 60.0) -> dict[str, tuple[int | None, int, int]]:
    """SIGTERM each and wait (SIGKILL after ``within`` s: exit code None); never raises.
    Returns name -> (exit code, batches, records) from its closing log line."""
    out: dict[str, tuple[int | None, int, int]] = {}
    for p in procs:
        code: int | None
        try:
            code = await p.terminate(within)
        except AssertionError:
            code = None
        found = _STOPPED.findall(p.log())
        batches, records = (int(found[-1][0]), int(found[-1][1])) if found else (0, 0)
        out[p.name] = (code, batches, records)
    return out


def note(message: str) -> None:
    """A timestamped line on stderr: pytest shows it with a failure, next to the agents' logs."""
    print(f"{datetime.now().strftime('%H:%M:%S.%f')[:-3]} {message}", file=sys.stderr, flush=True)


def tails(procs: list[WorkerProcess], chars: int = 2500) -> str:
    return "\n".join(f"--- {p.name}\n{p.log()[-chars:]}" for p in procs)
