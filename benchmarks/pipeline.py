"""The Kafka pipeline cases: 3 (end to end), 4 (priority isolation), 5 (chunk size sweep), and the
pipeline rows of cases 6 and 7.

A ``Session`` runs the real thing on unique topics (``bench<run>c<chunk>n<i>.*``) and a keyspace of
this run: ``python -m fanout worker planner``, ``writer --priority high`` (x ``--high-writers``) and
``writer --priority low`` (x ``--low-writers``) as subprocesses, stopped by pid.

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
import bisect
import contextlib
import importlib.util
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fanout.codec import ActivityEvent, decode_chunk, encode
from fanout.settings import Settings

from .common import (
    DAY_US,
    ROOT,
    Context,
    connect_store,
    cpu_seconds,
    edges_of,
    ensure_edges,
    events,
    median,
    rss_kib,
    service_pids,
    weighted_percentiles,
)
from .workload import Workload, user_id

PCTS = (50, 95, 99)
POLL_S = 0.05
CHUNK_SIZES = (10, 50, 100, 500, 2000)


class Unavailable(Exception):
    """The pipeline cannot run (agents missing, workers do not start, a pass times out)."""


def missing() -> str | None:
    """Why the pipeline cannot run here, or None."""
    modules = ("fanout.cli", "fanout.agents.worker", "fanout.agents.topics", "fanout.agents.supervisor",
               "fanout.cassandra")
    for module in modules:
        if importlib.util.find_spec(module) is None:
            return f"{module} is missing"
    return None


@dataclass(slots=True)
class ChunkRec:
    priority: str
    topic: str
    partition: int
    offset: int
    activity_id: str
    feeds: int


@dataclass
class PassResult:
    label: str
    activities: int
    deliveries: int
    seconds: float
    latencies: list[tuple[str, float, int, float]]  # (priority, latency s, feeds, commit time since t0)
    expected: int | None = None
    verified: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.deliveries / self.seconds if self.seconds > 0 else 0.0

    def pcts(self, priority: str) -> list[float]:
        return weighted_percentiles(((lat, n) for p, lat, n, _ in self.latencies if p == priority), PCTS)


class _History:
    """Committed offsets of one partition over time (monotonic)."""

    __slots__ = ("offsets", "times")

    def __init__(self) -> None:
        self.times: list[float] = []
        self.offsets: list[int] = []

    def add(self, t: float, offset: int) -> None:
        if not self.offsets or offset > self.offsets[-1]:
            self.times.append(t)
            self.offsets.append(offset)

    def committed_at(self, offset: int) -> float | None:
        """When the committed offset first passed ``offset`` (the record at ``offset`` is done)."""
        i = bisect.bisect_right(self.offsets, offset)
        return self.times[i] if i < len(self.offsets) else None


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
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.chunks: list[ChunkRec] = []
        self.history: dict[tuple[str, str, int], _History] = {}  # (group, topic, partition)
        self.tasks: list[asyncio.Task[None]] = []
        self.store: Any = None
        self.producer: Any = None
        self.tracker: Any = None
        self.admin: Any = None
        self.t_ref = time.perf_counter()
        self.warmups = 0

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> Session:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

        from fanout.agents import group_id
        from fanout.agents.topics import create_topics, describe_topics
        from fanout.kafka import KafkaClients

        s = self.settings
        await create_topics(s)
        self.store = await connect_store(s, self.keyspace)
        self.groups = {
            "planner": group_id(s.topic_prefix, "planner"),
            "high": group_id(s.topic_prefix, "writer", "high"),
            "low": group_id(s.topic_prefix, "writer", "low"),
        }
        self.admin = KafkaClients(s).admin_client()
        await self.admin.start()
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
        self._spawn(self._roles())
        await self._ready()
        return self

    def _spawn(self, roles: Sequence[tuple[str, list[str]]]) -> None:
        from fanout.agents.supervisor import settings_env

        env = {**os.environ, **settings_env(self.settings)}
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
        logs = self.ctx.work / "workers"
        logs.mkdir(exist_ok=True)
        for role, args in roles:
            name = f"{role}{'-' + args[1] if args else ''}-{len(self.procs)}"
            log = (logs / f"{self.settings.topic_prefix}{name}.log").open("ab")
            profile = ["-m", "cProfile", "-o", str(logs / f"{self.settings.topic_prefix}{name}.prof")]
            proc = subprocess.Popen(
                [sys.executable, *(profile if self.ctx.profile_workers else []), "-m", "fanout", "worker", role,
                 *args, "--log-level", "INFO"],
                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            )
            self.procs.append((name, proc))

    def _roles(self) -> list[tuple[str, list[str]]]:
        roles: list[tuple[str, list[str]]] = [("planner", [])]
        roles += [("writer", ["--priority", "high"])] * self.ctx.high_writers
        roles += [("writer", ["--priority", "low"])] * self.ctx.low_writers
        return roles

    async def _members(self, want: dict[str, int]) -> None:
        deadline = time.monotonic() + 90
        while True:
            self._check_alive()
            states = {}
            for key in want:
                described = await self.admin.describe_consumer_groups([self.groups[key]])
                g = described[0].to_object()["groups"][0]
                states[key] = (g["state"], len(g["members"]))
            if all(states[k] == ("Stable", n) for k, n in want.items()):
                return
            if time.monotonic() > deadline:
                raise Unavailable(f"workers did not join their groups in 90s: {states}; logs in {self.ctx.work}")
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
        index = next(i for i, (name, _) in enumerate(self.procs) if name.startswith("planner"))
        _, old = self.procs.pop(index)
        old.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(old.wait, 30)
        except subprocess.TimeoutExpired:
            old.kill()
            await asyncio.to_thread(old.wait)
        self.chunk_size = chunk_size
        self.settings = self.settings.replace(chunk_size=chunk_size)
        self._spawn([("planner", [])])
        await self._ready()

    @property
    def planner_pid(self) -> int:
        return next(proc.pid for name, proc in self.procs if name.startswith("planner"))

    def _check_alive(self) -> None:
        for name, proc in self.procs:
            if proc.poll() is not None:
                raise Unavailable(f"worker {name} exited with code {proc.returncode}; logs in {self.ctx.work}/workers")

    async def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        for _, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
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
        if self.store is not None:
            await self.store.close()
        if not self.ctx.keep:
            from fanout.agents.topics import delete_topics

            with contextlib.suppress(Exception):
                await delete_topics(self.settings)

    # observers ---------------------------------------------------------------------------
    async def _track(self) -> None:
        while True:
            batch = await self.tracker.getmany(timeout_ms=100, max_records=5000)
            for tp, records in batch.items():
                priority = "high" if tp.topic == self.settings.topic("high") else "low"
                for r in records:
                    chunk = decode_chunk(r.value)
                    self.chunks.append(ChunkRec(priority, tp.topic, tp.partition, r.offset, chunk.activity.id,
                                                len(chunk.feeds)))

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
                        self.history.setdefault((group, tp.topic, tp.partition), _History()).add(now, meta.offset)
            await asyncio.sleep(POLL_S)

    def committed_at(self, group: str, topic: str, partition: int, offset: int) -> float | None:
        hist = self.history.get((group, topic, partition))
        return hist.committed_at(offset) if hist is not None else None

    # graph -------------------------------------------------------------------------------
    async def ensure_edges(self, edges: Sequence[tuple[str, str, int]]) -> None:
        await ensure_edges(self.ctx, self.store.session, self.keyspace, edges)

    # a pass ------------------------------------------------------------------------------
    async def produce(self, evs: Sequence[ActivityEvent]) -> dict[str, tuple[float, str, int, int]]:
        """Send the events; return id -> (t_send, topic, partition, offset)."""
        topic = self.settings.topic("activities")
        pending = []
        for event in evs:
            t = time.perf_counter()
            fut = await self.producer.send(topic, value=encode(event), key=event.actor.encode())
            pending.append((event.id, t, fut))
        sent = {}
        for activity_id, t, fut in pending:
            md = await fut
            sent[activity_id] = (t, md.topic, md.partition, md.offset)
        return sent

    async def wait_done(self, sent: dict[str, tuple[float, str, int, int]], *, limit_s: float) -> list[Any]:
        """Wait until the planner and the writers committed everything of ``sent``; return
        [[(ChunkRec, t_commit)], planner commit times]."""
        deadline = time.monotonic() + limit_s
        planner = self.groups["planner"]
        while True:
            self._check_alive()
            planned = [self.committed_at(planner, t, p, o) for _, t, p, o in sent.values()]
            if all(x is not None for x in planned):
                break
            if time.monotonic() > deadline:
                raise Unavailable(f"the planner did not commit {sum(x is None for x in planned)} activities in "
                                  f"{limit_s:.0f}s; logs in {self.ctx.work}/workers")
            await asyncio.sleep(POLL_S)
        # every chunk of these activities is on the topics now: let the tracker reach the end
        s = self.settings
        tps = list(self.tracker.assignment())
        ends = await self.tracker.end_offsets(tps)
        while True:
            positions = [await self.tracker.position(tp) for tp in tps]
            if all(pos >= ends[tp] for pos, tp in zip(positions, tps, strict=True)):
                break
            await asyncio.sleep(POLL_S)
        mine = [c for c in self.chunks if c.activity_id in sent]
        group_of = {s.topic("high"): self.groups["high"], s.topic("low"): self.groups["low"]}
        while True:
            self._check_alive()
            done = [self.committed_at(group_of[c.topic], c.topic, c.partition, c.offset) for c in mine]
            if all(x is not None for x in done):
                return [list(zip(mine, done, strict=True)), planned]
            if time.monotonic() > deadline:
                left = sum(x is None for x in done)
                raise Unavailable(f"{left} of {len(mine)} chunks not committed by the writers in {limit_s:.0f}s; "
                                  f"logs in {self.ctx.work}/workers")
            await asyncio.sleep(POLL_S)

    def cpu(self) -> dict[str, float]:
        """CPU seconds so far of every process involved, by role (writers of a priority summed)."""
        out: dict[str, float] = {}
        for name, proc in self.procs:
            role = name.rsplit("-", 1)[0]
            out[role] = out.get(role, 0.0) + cpu_seconds(proc.pid)
        for name, pid in service_pids().items():
            out[name] = cpu_seconds(pid)
        out["bench"] = cpu_seconds()
        return out

    async def run_pass(self, evs: Sequence[ActivityEvent], label: str, *, limit_s: float = 600,
                       expected: int | None = None) -> PassResult:
        cpu0 = self.cpu()
        t0 = time.perf_counter()
        sent = await self.produce(evs)
        chunk_commits, planned = await self.wait_done(sent, limit_s=limit_s)
        t_end = max([t for _, t in chunk_commits] + [t for t in planned if t is not None])
        lat = []
        for chunk, t_commit in chunk_commits:
            lat.append((chunk.priority, t_commit - sent[chunk.activity_id][0], chunk.feeds, t_commit - t0))
        deliveries = sum(c.feeds for c, _ in chunk_commits) + len(evs)
        planned_s = max(t for t in planned if t is not None) - t0
        cpu1 = self.cpu()
        cpu = {k: round(cpu1[k] - cpu0.get(k, 0.0), 2) for k in cpu1}
        return PassResult(label, len(evs), deliveries, t_end - t0, lat, expected,
                          extra={"chunks": len(chunk_commits), "t0": t0, "planned_s": planned_s, "cpu_s": cpu})

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
    """The running session of ``chunk_size`` (one at a time: another chunk size stops it)."""
    reason = missing()
    if reason:
        raise Unavailable(reason)
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
    current: Session | None = ctx.shared.pop("session", None)
    if current is not None:
        await current.stop()


def _window(ctx: Context) -> int:
    return int(ctx.settings.active_window_days * DAY_US)


async def passes(ctx: Context, sess: Session, wl: Workload, label: str, repeats: int,
                 first_run: int) -> list[PassResult]:
    await sess.ensure_edges(edges_of(wl, ctx.t0_us, _window(ctx)))
    results = []
    for i in range(repeats):
        evs = events(wl.activities, first_run + i)
        limit_s = max(180.0, wl.deliveries() / 400)
        result = await sess.run_pass(evs, label, limit_s=limit_s, expected=wl.deliveries())
        if i == 0:
            result.verified = await sess.verify(wl, evs)
        ctx.log(f"{label}: pass {i + 1}/{repeats}: {result.deliveries:,} rows in {result.seconds:.2f}s = "
                f"{result.rate:,.0f}/s; HIGH p99 {result.pcts('high')[2]:.2f}s, LOW p99 {result.pcts('low')[2]:.2f}s")
        if result.deliveries != wl.deliveries():
            ctx.log(f"[yellow]{label}: {result.deliveries} rows tracked, {wl.deliveries()} expected[/]")
        results.append(result)
    return results


def _latency_rows(results: Sequence[PassResult]) -> dict[str, dict[str, float]]:
    pooled: dict[str, dict[str, float]] = {}
    for priority in ("high", "low"):
        samples = [(lat, n) for r in results for p, lat, n, _ in r.latencies if p == priority]
        values = weighted_percentiles(samples, PCTS)
        pooled[priority] = {f"p{p}": v for p, v in zip(PCTS, values, strict=True)}
    return pooled


def _series(result: PassResult) -> list[list[float | str]]:
    return [[p, round(t, 3), round(lat, 3), n] for p, lat, n, t in result.latencies]


async def run_on_workload(ctx: Context, wl: Workload, label: str) -> list[float]:
    """Deliveries/s of the pipeline on ``wl`` (case 7 compares it with SF's Celery worker)."""
    sess = await session(ctx, 100)
    results = await passes(ctx, sess, wl, f"{label} pipeline", ctx.repeats, 7000)
    rates = [r.rate for r in results]
    ctx.shared["pipeline_on_sf_workload"] = rates
    return rates


# case 3 --------------------------------------------------------------------------------------
async def case3(ctx: Context) -> dict[str, Any]:
    from .cases import standard_workload

    wl = standard_workload(ctx)
    sess = await session(ctx, 100)
    results = await passes(ctx, sess, wl, "case 3", ctx.repeats, 100)
    rates = [r.rate for r in results]
    lat = _latency_rows(results)
    mid = sorted(results, key=lambda r: r.rate)[len(results) // 2]
    ratios = {}
    ceiling = ctx.shared.get("ceiling")
    if ceiling:
        ratios["pipeline / ceiling (raw single-row)"] = median(rates) / ceiling["single"]
        ratios["pipeline / ceiling (raw grouped)"] = median(rates) / ceiling["grouped"]
    ctx.shared["pipeline_rate"] = median(rates)
    cpu = {k: median([r.extra["cpu_s"].get(k, 0.0) for r in results]) for k in results[0].extra["cpu_s"]}
    wall = median([r.seconds for r in results])
    return {
        "title": "Pipeline end to end: activities topic -> planner -> writers -> Cassandra rows",
        "inputs": {**wl.describe(), "workers": f"1 planner, {ctx.high_writers} high writers, "
                   f"{ctx.low_writers} low writers (one process each)",
                   "batch_max_records": ctx.settings.batch_max_records, "max_in_flight": ctx.settings.max_in_flight,
                   "verified": results[0].verified},
        "rows": [{"name": "pipeline deliveries/s", "unit": "rows/s", "median": median(rates), "runs": rates}],
        "latency": lat,
        "latency_runs": [{"high": r.pcts("high"), "low": r.pcts("low")} for r in results],
        "ratios": ratios,
        "series": {"case3": _series(mid)},
        "cpu_per_pass_s": {**cpu, "wall": round(wall, 2), "cores": os.cpu_count() or 0},
        "notes": [f"CPU seconds per pass (median; wall {wall:.1f}s x {os.cpu_count()} cores = "
                  f"{wall * (os.cpu_count() or 1):.1f} core-seconds): "
                  + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1])),
                  "Latency: from the activity's send to the poll that saw the writer's commit past its chunk "
                  f"(rows are visible before the commit; poll every {POLL_S * 1000:.0f} ms), per follower."],
    }


# case 4 --------------------------------------------------------------------------------------
async def case4(ctx: Context) -> dict[str, Any]:
    sess = await session(ctx, 100)
    now = ctx.t0_us
    window = _window(ctx)
    probe_followers = 250  # 3 HIGH chunks per probe
    bulk_actors, bulk_followers, bulk_posts = (4, 10_000, 3) if not ctx.quick else (4, 5_000, 1)
    edges = [("probe", f"ph{i}", now + window) for i in range(probe_followers)]
    edges += [(f"bulk{b}", f"ql{i}", 0) for b in range(bulk_actors) for i in range(bulk_followers)]
    await sess.ensure_edges(edges)
    low_rows = bulk_actors * bulk_followers * bulk_posts

    def probe(i: int) -> ActivityEvent:
        return ActivityEvent(actor="probe", verb="probe", object=f"probe:{i}", id=f"probe-{ctx.run_id}-{i}",
                             time=datetime.now(UTC))

    n_idle = 20 if not ctx.quick else 10
    idle: list[PassResult] = []
    for i in range(n_idle):
        idle.append(await sess.run_pass([probe(i)], "idle probe", limit_s=60))
        await asyncio.sleep(0.1)
    idle_high = [(lat, n) for r in idle for p, lat, n, _ in r.latencies if p == "high"]
    ctx.log(f"case 4: idle HIGH p99 {weighted_percentiles(idle_high, [99])[0]:.3f}s over {n_idle} probes")

    # the LOW backlog: every bulk follower is inactive, so each post fans out on the low topic only
    bulk = [ActivityEvent(actor=f"bulk{b}", verb="post", object=f"bulk:{b}:{k}", id=f"bulk-{ctx.run_id}-{b}-{k}",
                          time=datetime.now(UTC)) for k in range(bulk_posts) for b in range(bulk_actors)]
    t_bulk = time.perf_counter()
    bulk_sent = await sess.produce(bulk)
    # wait until the planner has planned the backlog (the low topic holds it), then probe while it drains
    planner = sess.groups["planner"]
    while True:
        if all(sess.committed_at(planner, t, p, o) is not None for _, t, p, o in bulk_sent.values()):
            break
        await asyncio.sleep(POLL_S)
    planned_s = time.perf_counter() - t_bulk
    busy: list[PassResult] = []
    low_group = sess.groups["low"]
    low_topic = sess.settings.topic("low")

    def low_backlog() -> int:
        left = 0
        for c in sess.chunks:
            if c.topic == low_topic and c.activity_id in bulk_sent and \
                    sess.committed_at(low_group, c.topic, c.partition, c.offset) is None:
                left += c.feeds
        return left

    backlog_at_probe = []
    i = n_idle
    while low_backlog() > 0 and len(busy) < 200:
        backlog_at_probe.append(low_backlog())
        busy.append(await sess.run_pass([probe(i)], "busy probe", limit_s=120))
        i += 1
        await asyncio.sleep(0.2)
    # the backlog's own completion
    bulk_done = await sess.wait_done(bulk_sent, limit_s=max(300.0, low_rows / 300))
    drain_end = max(t for _, t in bulk_done[0])
    drain_s = drain_end - t_bulk
    busy_high = [(lat, n) for r in busy for p, lat, n, _ in r.latencies if p == "high"]
    idle_p = weighted_percentiles(idle_high, PCTS)
    busy_p = weighted_percentiles(busy_high, PCTS)
    ctx.log(f"case 4: busy HIGH p99 {busy_p[2]:.3f}s over {len(busy)} probes; LOW backlog of {low_rows:,} rows "
            f"drained in {drain_s:.1f}s")
    idle_series = [[k, round(lat, 3), n] for k, r in enumerate(idle) for p, lat, n, _ in r.latencies if p == "high"]
    busy_series = []
    for r, backlog in zip(busy, backlog_at_probe, strict=True):
        t_rel = r.extra["t0"] - t_bulk
        for p, lat, n, _ in r.latencies:
            if p == "high":
                busy_series.append([round(t_rel, 3), round(lat, 3), n, backlog])
    # low drain over time: rows of backlog chunks committed by time t
    commits = sorted(t - t_bulk for _, t in bulk_done[0])
    feeds_sorted = [c.feeds for c, _ in sorted(bulk_done[0], key=lambda ct: ct[1])]
    drain_series, acc = [], low_rows
    for t, f in zip(commits, feeds_sorted, strict=True):
        acc -= f
        drain_series.append([round(t, 3), acc])
    return {
        "title": "Priority isolation: HIGH latency while a LOW backlog drains",
        "inputs": {"probe": f"1 activity of an account with {probe_followers} HIGH followers (3 chunks)",
                   "low_backlog": f"{len(bulk)} activities of {bulk_actors} accounts with {bulk_followers:,} LOW "
                                  f"followers each = {low_rows:,} LOW rows",
                   "idle_probes": n_idle, "busy_probes": len(busy), "chunk_size": 100,
                   "workers": f"1 planner, {ctx.high_writers} high writers, {ctx.low_writers} low writers",
                   "backlog_planned_s": round(planned_s, 2)},
        "rows": [
            {"name": "HIGH p99, idle system", "unit": "s", "median": idle_p[2], "runs": []},
            {"name": "HIGH p99, while the LOW backlog drains", "unit": "s", "median": busy_p[2], "runs": []},
            {"name": "LOW backlog drain rate", "unit": "rows/s", "median": low_rows / drain_s if drain_s else 0,
             "runs": [low_rows / drain_s if drain_s else 0]},
        ],
        "latency": {"high_idle": dict(zip((f"p{p}" for p in PCTS), idle_p, strict=True)),
                    "high_busy": dict(zip((f"p{p}" for p in PCTS), busy_p, strict=True))},
        "ratios": {"HIGH p99 busy / idle": busy_p[2] / idle_p[2] if idle_p[2] else float("nan")},
        "series": {"case4_idle": idle_series, "case4_busy": busy_series, "case4_low_drain": drain_series},
        "notes": ["Probes are sent one at a time (each waits for its own commit) while the low topic holds the "
                  "backlog; HIGH and LOW writers are separate consumer groups sharing 2 cores and one node."],
    }


# case 6, through Cassandra and the pipeline ---------------------------------------------------
async def large_account(ctx: Context, plan_followers: int, pipe_followers: int) -> list[dict[str, Any]]:
    """Rows of case 6 on the real path: planning by pages from Cassandra (``plan_followers`` and a
    tenth of it), and one activity of an account with ``pipe_followers`` followers through the
    pipeline (time until planned, time to complete, planner RSS growth)."""
    sess = await session(ctx, 100)
    window = _window(ctx)
    now = int(time.time() * 1e6)
    small = max(1_000, plan_followers // 10)

    def edges(actor: str, n: int) -> list[tuple[str, str, int]]:
        return [(actor, f"b{i}", now + window if i % 5 == 0 else 0) for i in range(n)]

    await sess.ensure_edges(edges("bigc", plan_followers) + edges("midc", small) + edges("pipec", pipe_followers))

    def event(actor: str, tag: str) -> ActivityEvent:
        return ActivityEvent(actor=actor, verb="post", object=f"{actor}:{tag}", id=f"{actor}-{ctx.run_id}-{tag}",
                             time=datetime.now(UTC))

    plan: dict[str, dict[str, float]] = {}
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
    for actor, n in (("midc", small), ("bigc", plan_followers)):
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "benchmarks.plan_probe", sess.keyspace, actor, str(n), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE,
        )
        out, _ = await asyncio.wait_for(proc.communicate(), 900)
        if proc.returncode != 0:
            raise Unavailable(f"plan_probe {actor} failed (exit {proc.returncode})")
        plan[actor] = json.loads(out.decode().strip().splitlines()[-1])
    for actor, n in (("midc", small), ("bigc", plan_followers)):
        p = plan[actor]
        ctx.log(f"case 6: planning {n:,} followers from Cassandra: {p['seconds']:.2f}s, RSS +"
                f"{p['rss_growth_kib']:,.0f} KiB, tracemalloc peak {p['tracemalloc_peak_kib']:,.0f} KiB")

    pid = sess.planner_pid
    before = rss_kib(pid)[0]
    peak_rss = before
    done = asyncio.Event()

    async def sample() -> None:
        nonlocal peak_rss
        while not done.is_set():
            peak_rss = max(peak_rss, rss_kib(pid)[0])
            await asyncio.sleep(0.02)

    sampler = asyncio.create_task(sample())
    try:
        result = await sess.run_pass([event("pipec", "pipeline")], "large account",
                                     limit_s=max(300.0, pipe_followers / 200))
    finally:
        done.set()
        await sampler
    ctx.log(f"case 6: pipeline: planned in {result.extra['planned_s']:.1f}s, {result.deliveries:,} rows complete "
            f"in {result.seconds:.1f}s; planner RSS {before / 1024:.0f} -> peak {peak_rss / 1024:.0f} MiB")
    rows = []
    for actor, n in (("midc", small), ("bigc", plan_followers)):
        p = plan[actor]
        rows += [
            {"name": f"planning {n:,} followers from Cassandra (pages of 1000)", "unit": "s",
             "median": p["seconds"], "runs": []},
            {"name": f"planner memory, {n:,} followers from Cassandra: RSS growth", "unit": "KiB",
             "median": p["rss_growth_kib"], "runs": []},
            {"name": f"planner memory, {n:,} followers from Cassandra: tracemalloc peak", "unit": "KiB",
             "median": p["tracemalloc_peak_kib"], "runs": []},
        ]
    return [
        *rows,
        {"name": f"pipeline, {pipe_followers:,} followers: planned (planner committed)", "unit": "s",
         "median": result.extra["planned_s"], "runs": []},
        {"name": f"pipeline, {pipe_followers:,} followers: complete (every row committed)", "unit": "s",
         "median": result.seconds, "runs": [], "deliveries": result.deliveries},
        {"name": "planner process RSS growth during it (sampled every 20 ms)", "unit": "KiB",
         "median": float(peak_rss - before), "runs": [], "rss_before_kib": before},
    ]


# case 5 --------------------------------------------------------------------------------------
async def case5(ctx: Context) -> dict[str, Any]:
    from .cases import standard_workload

    base = standard_workload(ctx)
    acts, total = [], 0
    for act in base.activities:  # a prefix worth about half the standard pass: 5 sizes x the runs
        if total >= base.deliveries() // 2:
            break
        acts.append(act)
        total += len(base.graph.followers.get(act.actor, [])) + 1
    rows, table = [], []
    for cs in CHUNK_SIZES:
        wl = Workload(base.graph, acts, cs)
        sess = await session(ctx, cs)
        results = await passes(ctx, sess, wl, f"case 5 chunk {cs}", ctx.repeats, 500 + cs)
        rates = [r.rate for r in results]
        lat = _latency_rows(results)
        rows.append({"name": f"chunk size {cs}", "unit": "rows/s", "median": median(rates), "runs": rates,
                     "chunks_per_pass": wl.chunks(cs)})
        table.append({"chunk_size": cs, "rate": median(rates), "chunks": wl.chunks(cs),
                      **{f"high_{k}": v for k, v in lat["high"].items()},
                      **{f"low_{k}": v for k, v in lat["low"].items()}})
    await session(ctx, 100)
    return {
        "title": "Chunk size sweep: throughput and latency",
        "inputs": {**Workload(base.graph, acts, 100).describe(), "chunk_size": list(CHUNK_SIZES)},
        "rows": rows,
        "sweep": table,
        "notes": ["The same writers throughout; only the planner restarts with each chunk size. Latency "
                  "percentiles per follower, pooled over the runs."],
    }
