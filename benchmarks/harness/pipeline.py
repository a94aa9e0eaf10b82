"""The real Kafka pipeline under measurement (cases 3-7).

A ``Session`` runs the real thing on unique topics (``bench<run>c<chunk>n<i>.*``) and a keyspace of
this run: ``python -m fanout worker planner``, ``writer --priority high`` (x ``--high-writers``) and
``writer --priority low`` (x ``--low-writers``) as subprocesses (``workers.py``), stopped by pid.

How a pass is measured, without touching the agents:

* activity events are produced to ``activities`` (key = actor), each stamped with the time its
  send started (``t_send``);
* a tracker consumer (no group) reads every chunk message the planner produces to ``high`` and
  ``low``: its partition, offset, activity id and number of feeds;
* a watcher polls the committed offsets of the planner and writer groups every 50 ms. A writer
  commits a chunk's offset only after Cassandra acknowledged every row of it (``fanout.agents.base``),
  so the first poll that sees the commit past a chunk bounds the moment its rows were visible
  (from above, by at most one poll interval);
* a chunk's latency is ``t_commit - t_send`` of its activity, counted once per feed: latency
  percentiles are per follower. A pass ends when every chunk and every activity (the author's
  own feed, written by the planner) is committed; deliveries/s = rows / (last commit - first send).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import random
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from functools import partial
from typing import Any

from fanout import ActivityEvent, CassandraStore, Settings
from fanout.codec import decode_chunk, encode

from .context import DAY_US, Context
from .errors import PipelineUnavailable
from .inputs import Edge, edges_of, events
from .stack import wait_for_coordinator
from .stats import PCTS, weighted_percentiles
from .stores import connect_store, ensure_edges
from .tracking import POLL_S, ChunkRec, CommitHistory, Latency, PassResult
from .workers import Workers
from .workload import Workload, user_id

Sent = dict[str, tuple[float, str, int, int]]  # activity id -> (t_send, topic, partition, offset)


def missing() -> str | None:
    """Why the pipeline cannot run here, or None."""
    modules = ("fanout.cli", "fanout.agents.worker", "fanout.agents.topics", "fanout.agents.supervisor",
               "fanout.cassandra")
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is missing"
    return None


class Session:
    """Topics, workers, a tracker and a watcher for one chunk size."""

    def __init__(self, ctx: Context, chunk_size: int, keyspace: str) -> None:
        n = len(ctx.topic_prefixes)
        prefix = f"bench{ctx.run_id}c{chunk_size}n{n}."
        ctx.topic_prefixes.append(prefix)
        self.ctx = ctx
        self.chunk_size = chunk_size
        self.keyspace = keyspace
        self.settings: Settings = ctx.settings.replace(
            store="cassandra", topic_prefix=prefix, cassandra_keyspace=keyspace, chunk_size=chunk_size
        )
        self.workers = Workers(ctx)
        self.chunks: list[ChunkRec] = []
        self.history: dict[tuple[str, str, int], CommitHistory] = {}  # (group, topic, partition)
        self.groups: dict[str, str] = {}  # "planner", "high", "low" -> consumer group
        self.tasks: list[asyncio.Task[None]] = []
        self._store: CassandraStore | None = None
        self.producer: Any = None  # aiokafka clients (untyped)
        self.tracker: Any = None
        self.admin: Any = None
        self.warmups = 0

    @property
    def store(self) -> CassandraStore:
        if self._store is None:
            raise RuntimeError("the session is not started")
        return self._store

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Session:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        from fanout.agents import group_id
        from fanout.agents.topics import create_topics, describe_topics
        from fanout.kafka import KafkaClients

        s = self.settings
        await create_topics(s)
        self._store = await connect_store(s, self.keyspace)
        self.groups = {
            "planner": group_id(s.topic_prefix, "planner"),
            "high": group_id(s.topic_prefix, "writer", "high"),
            "low": group_id(s.topic_prefix, "writer", "low"),
            "follows": group_id(s.topic_prefix, "follows"),
        }
        self.admin = KafkaClients(s).admin_client()
        await self.admin.start()
        await self._coordinator()
        parts = await describe_topics(s)
        self.tracker = AIOKafkaConsumer(bootstrap_servers=s.kafka_bootstrap, enable_auto_commit=False,
                                        group_id=None, auto_offset_reset="earliest", client_id="bench-tracker")
        await self.tracker.start()
        tps = [TopicPartition(s.topic(p), i) for p in ("high", "low") for i in range(parts[s.topic(p)])]
        self.tracker.assign(tps)
        await self.tracker.seek_to_beginning(*tps)
        self.producer = AIOKafkaProducer(bootstrap_servers=s.kafka_bootstrap, acks="all", linger_ms=2,
                                         enable_idempotence=True, client_id="bench-producer")
        await self.producer.start()
        self.tasks = [asyncio.create_task(self._track()), asyncio.create_task(self._watch())]
        self.workers.spawn(s, self.workers.roles())
        await self._ready()
        return self

    async def _coordinator(self) -> None:
        """Wait for the group coordinator, as the agents do (``stack.wait_for_coordinator``)."""
        try:
            waited = await wait_for_coordinator(self.settings)
        except RuntimeError as exc:
            raise PipelineUnavailable(str(exc)) from exc
        if waited > 1:
            self.ctx.log(f"pipeline: the group coordinator answered after {waited:.1f}s (a fresh broker)")

    async def _describe(self, group: str) -> tuple[str, int]:
        """(state, members) of a consumer group; retriable errors (no coordinator yet) are retried."""
        from fanout.retry import retry

        described = await retry(partial(self.admin.describe_consumer_groups, [group]), within=60.0,
                                first_delay=0.1, max_delay=2.0)
        g = described[0].to_object()["groups"][0]
        return g["state"], len(g["members"])

    async def _members(self, want: dict[str, int]) -> None:
        deadline = time.monotonic() + 90
        while True:
            self.workers.check_alive()
            states = {key: await self._describe(self.groups[key]) for key in want}
            if all(states[k] == ("Stable", n) for k, n in want.items()):
                return
            if time.monotonic() > deadline:
                raise PipelineUnavailable(f"workers did not join their groups in 90s: {states}; "
                                          f"logs in {self.ctx.work}")
            await asyncio.sleep(0.25)

    async def _ready(self) -> None:
        """Every group has all its members and a warm-up activity went all the way through."""
        await self._members({"planner": 1, "high": self.ctx.high_writers, "low": self.ctx.low_writers})
        now = int(time.time() * 1e6)
        await self.ensure_edges([("warmup", "warm-high", now + DAY_US), ("warmup", "warm-low", 0)])
        self.warmups += 1
        event = ActivityEvent(actor="warmup", verb="warm", object=f"w{self.warmups}",
                              id=f"warm-{self.settings.topic_prefix}{self.warmups}", time=datetime.now(UTC))
        await self.run_pass([event], "warm-up", limit_s=90)

    async def set_chunk_size(self, chunk_size: int) -> None:
        """Restart only the planner with another chunk size (the writers do not depend on it)."""
        if chunk_size == self.chunk_size:
            return
        await self.workers.stop_planner()
        self.chunk_size = chunk_size
        self.settings = self.settings.replace(chunk_size=chunk_size)
        self.workers.spawn(self.settings, [("planner", [])])
        await self._ready()

    async def start_follows(self, count: int) -> None:
        """Start ``count`` follows agents (once per session) and wait until they joined their group."""
        running = sum(1 for name, _ in self.workers.procs if name.startswith("follows"))
        if running < count:
            self.workers.spawn(self.settings, [("follows", [])] * (count - running))
        await self._members({"follows": count})

    async def stop(self) -> None:
        self.workers.stop()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for client in (self.tracker, self.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await client.stop()
        if self.admin is not None:
            with contextlib.suppress(Exception):
                await self.admin.close()
        if self._store is not None:
            await self._store.close()
        if not self.ctx.keep:
            from fanout.agents.topics import delete_topics

            with contextlib.suppress(Exception):
                await delete_topics(self.settings)

    # observers ---------------------------------------------------------------------------
    async def _track(self) -> None:
        wall_minus_perf = time.time() - time.perf_counter()
        while True:
            batch = await self.tracker.getmany(timeout_ms=100, max_records=5000)
            for tp, records in batch.items():
                priority = "high" if tp.topic == self.settings.topic("high") else "low"
                for r in records:
                    chunk = decode_chunk(r.value)
                    produced = r.timestamp / 1000 - wall_minus_perf  # create time (ms) -> perf_counter
                    self.chunks.append(ChunkRec(priority, tp.topic, tp.partition, r.offset, chunk.activity.id,
                                                len(chunk.feeds), produced))

    async def _watch(self) -> None:
        while True:
            for group in self.groups.values():
                try:
                    offsets = await self.admin.list_consumer_group_offsets(group)
                except Exception:
                    continue
                now = time.perf_counter()
                for tp, meta in offsets.items():
                    if meta.offset >= 0:
                        self.history.setdefault((group, tp.topic, tp.partition), CommitHistory()).add(now, meta.offset)
            await asyncio.sleep(POLL_S)

    def committed_at(self, group: str, topic: str, partition: int, offset: int) -> float | None:
        hist = self.history.get((group, topic, partition))
        return hist.committed_at(offset) if hist is not None else None

    # graph -------------------------------------------------------------------------------
    async def ensure_edges(self, edges: Sequence[Edge]) -> None:
        await ensure_edges(self.ctx, self.store, edges)

    # a pass ------------------------------------------------------------------------------
    async def produce(self, evs: Sequence[ActivityEvent]) -> Sent:
        """Send the events (each with its id); return id -> (t_send, topic, partition, offset)."""
        topic = self.settings.topic("activities")
        pending = []
        for event in evs:
            if event.id is None:
                raise ValueError("the bench's events carry their ids (the tracker matches chunks by id)")
            t = time.perf_counter()
            fut = await self.producer.send(topic, value=encode(event), key=event.actor.encode())
            pending.append((event.id, t, fut))
        sent = {}
        for activity_id, t, fut in pending:
            md = await fut
            sent[activity_id] = (t, md.topic, md.partition, md.offset)
        return sent

    async def _all_committed(self, times: Callable[[], list[float | None]], what: str, *, deadline: float,
                             limit_s: float) -> list[float]:
        """Poll ``times()`` (the commit time of each record, None: not yet) until every record is
        committed; return the times. ``PipelineUnavailable`` past ``deadline`` or when a worker died."""
        while True:
            self.workers.check_alive()
            seen = times()
            done = [t for t in seen if t is not None]
            if len(done) == len(seen):
                return done
            if time.monotonic() > deadline:
                raise PipelineUnavailable(f"{len(seen) - len(done)} of {len(seen)} {what} not committed in "
                                          f"{limit_s:.0f}s; logs in {self.ctx.work}/workers")
            await asyncio.sleep(POLL_S)

    async def wait_planned(self, sent: Sent, *, limit_s: float, deadline: float | None = None) -> list[float]:
        """Wait until the planner committed every activity of ``sent``; return when it did, each."""
        planner = self.groups["planner"]
        return await self._all_committed(
            lambda: [self.committed_at(planner, t, p, o) for _, t, p, o in sent.values()],
            "activities by the planner", deadline=deadline or time.monotonic() + limit_s, limit_s=limit_s,
        )

    async def wait_done(self, sent: Sent, *, limit_s: float) -> tuple[list[tuple[ChunkRec, float]], list[float]]:
        """Wait until the planner and the writers committed everything of ``sent``; return
        ([(chunk, its writer's commit time)], the planner's commit time of each activity)."""
        deadline = time.monotonic() + limit_s
        planned = await self.wait_planned(sent, limit_s=limit_s, deadline=deadline)
        # every chunk of these activities is on the topics now: let the tracker reach the end
        tps = list(self.tracker.assignment())
        ends = await self.tracker.end_offsets(tps)
        while True:
            positions = [await self.tracker.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            await asyncio.sleep(POLL_S)
        mine = [c for c in self.chunks if c.activity_id in sent]
        group_of = {self.settings.topic(p): self.groups[p] for p in ("high", "low")}
        done = await self._all_committed(
            lambda: [self.committed_at(group_of[c.topic], c.topic, c.partition, c.offset) for c in mine],
            "chunks by the writers", deadline=deadline, limit_s=limit_s,
        )
        return list(zip(mine, done, strict=True)), planned

    async def run_pass(self, evs: Sequence[ActivityEvent], label: str, *, limit_s: float = 600,
                       expected: int | None = None) -> PassResult:
        cpu0 = self.workers.cpu()
        t0 = time.perf_counter()
        sent = await self.produce(evs)
        chunk_commits, planned = await self.wait_done(sent, limit_s=limit_s)
        t_end = max([t for _, t in chunk_commits] + planned)
        lat: list[Latency] = []
        planning: list[tuple[float, int]] = []  # HIGH chunks: (produced - sent, feeds): the planner's share
        for chunk, t_commit in chunk_commits:
            lat.append((chunk.priority, t_commit - sent[chunk.activity_id][0], chunk.feeds, t_commit - t0))
            if chunk.priority == "high":
                planning.append((chunk.produced - sent[chunk.activity_id][0], chunk.feeds))
        deliveries = sum(c.feeds for c, _ in chunk_commits) + len(evs)
        planned_s = max(planned) - t0
        cpu1 = self.workers.cpu()
        cpu = {k: round(cpu1[k] - cpu0.get(k, 0.0), 2) for k in cpu1}
        return PassResult(label, len(evs), deliveries, t_end - t0, lat, expected,
                          extra={"chunks": len(chunk_commits), "t0": t0, "planned_s": planned_s, "cpu_s": cpu,
                                 "high_planned_pcts": weighted_percentiles(planning, PCTS)})

    async def verify(self, wl: Workload, evs: Sequence[ActivityEvent], sample: int = 30) -> str:
        """Read a sample of follower feeds: is every activity there?"""
        rng = random.Random(5)
        checks = []
        for event in evs:
            actor = int(event.actor[1:])
            followers = wl.graph.followers.get(actor, [])
            for f in rng.sample(followers, min(2, len(followers))):
                checks.append((f"timeline:{user_id(f)}", event.id))
        rng.shuffle(checks)
        checks = checks[:sample]
        found = 0
        for feed, activity_id in checks:
            page = await self.store.read(feed, limit=self.ctx.settings.max_length)
            found += any(a.id == activity_id for a in page)
        return f"{found}/{len(checks)} sampled follower feeds hold the activity"


async def session(ctx: Context, chunk_size: int = 100) -> Session:
    """The running session of ``chunk_size`` (one at a time: another chunk size restarts its planner)."""
    reason = missing()
    if reason:
        raise PipelineUnavailable(reason)
    current: Session | None = ctx.shared.get("session")
    if current is not None:
        if current.chunk_size != chunk_size:
            ctx.log(f"pipeline: restarting the planner with chunk size {chunk_size}")
            await current.set_chunk_size(chunk_size)
        return current
    ks = ctx.keyspace("pipeline")
    ctx.log(f"pipeline: starting a session (chunk size {chunk_size}, {ctx.high_writers} high + "
            f"{ctx.low_writers} low writers)")
    new = Session(ctx, chunk_size, ks)
    ctx.shared["session"] = new
    try:
        await new.start()
    except Exception:
        await close(ctx)
        raise
    return new


async def close(ctx: Context) -> None:
    """Stop the running session, if any (its workers, clients, and topics unless ``--keep``)."""
    current: Session | None = ctx.shared.pop("session", None)
    if current is not None:
        await current.stop()


async def passes(ctx: Context, sess: Session, wl: Workload, label: str, repeats: int,
                 first_run: int) -> list[PassResult]:
    """``repeats`` passes of ``wl`` through the pipeline (runs ``first_run``...), logged; the first
    one's follower feeds are sampled and read back."""
    await sess.ensure_edges(edges_of(wl, ctx.t0_us, ctx.active_window_us))
    results = []
    for i in range(repeats):
        evs = events(wl.activities, first_run + i)
        limit_s = max(180.0, wl.deliveries() / 400)
        result = await sess.run_pass(evs, label, limit_s=limit_s, expected=wl.deliveries())
        if i == 0:
            result.verified = await sess.verify(wl, evs)
        ctx.log(f"{label}: pass {i + 1}/{repeats}: {result.deliveries:,} rows in {result.seconds:.2f}s = "
                f"{result.rate:,.0f}/s; HIGH p99 {result.pcts('high')[2]:.2f}s (planned by "
                f"{result.extra['high_planned_pcts'][2]:.2f}s), LOW p99 {result.pcts('low')[2]:.2f}s")
        if result.deliveries != wl.deliveries():
            ctx.log(f"[yellow]{label}: {result.deliveries} rows tracked, {wl.deliveries()} expected[/]")
        results.append(result)
    return results
