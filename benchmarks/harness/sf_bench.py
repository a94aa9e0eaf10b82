"""Stream Framework 1.4.0 side of the benchmark (the baseline of case 2 and case 7).

BENCHMARK-ONLY. This module runs in its OWN virtualenv (``benchmarks/.work/sf-venv``, built by
``benchmarks/harness/sfenv.py``), never in the project's: Stream Framework's Celery tasks carry Python
objects (the manager, the feed class, the operation function, the activities), so Celery must
use its pickle serializer here. Nothing of fanout imports this file, and fanout uses no pickle.

It is also a compatibility shim for running a 2016 library on Python 3.11 and a 2020s stack:

* ``collections.Hashable`` (used by ``stream_framework.utils.memoized``) is aliased to
  ``collections.abc.Hashable`` (the alias was removed in Python 3.10);
* ``redis.client.BasePipeline`` (imported by its Redis storage, which this benchmark does not
  use) is aliased to ``redis.client.Pipeline`` (renamed in redis-py 3): kombu's Redis transport,
  the Celery broker of the worker run, needs redis-py >= 4, so ``redis<3`` cannot be used;
* its settings (``stream_framework.settings``, Django-style module globals) are set before its
  Cassandra storage is imported, because that import connects (``setup_connection()`` in the
  class body): protocol v4 instead of its default v2 (Cassandra 4+ dropped v2) and the libev
  reactor, as fanout uses;
* in a Celery prefork worker that import-time connection is dead in the children, so each child
  reconnects in ``worker_process_init`` (without it the tasks hang);
* the ``async`` keyword argument of its Manager (a SyntaxError since Python 3.7) was renamed
  ``async_`` when its sdist was installed (``sfenv.py``).

``sfenv.py`` runs it as ``python -c "import sf_bench, sys; sys.exit(sf_bench.main())" run --workload
W.json --repeats N`` (imported by name, so its classes pickle as ``sf_bench.*``), configured by
``SF_BENCH_*`` variables (store memory|cassandra, eager or a broker); a Celery worker runs
``celery -A sf_bench worker`` with the same environment. Prints one JSON object on stdout.
"""

# Celery, Stream Framework and redis-py exist only in that virtualenv, and the first two ship no
# types: mypy (run in the project's venv) sees them as Any, so this module may subclass and
# decorate with them.
# mypy: disable-error-code="import-not-found", allow-subclassing-any, allow-untyped-decorators

from __future__ import annotations

import argparse
import collections
import collections.abc
import datetime
import json
import os
import sys
import time
from typing import Any

collections.Hashable = collections.abc.Hashable  # type: ignore[attr-defined]

try:  # Stream Framework's Redis storage imports a class redis-py 3 renamed
    import redis.client

    if not hasattr(redis.client, "BasePipeline"):
        redis.client.BasePipeline = redis.client.Pipeline
except ImportError:  # pragma: no cover - the memory-only venv may lack redis
    pass

from celery import Celery, signals  # noqa: E402

STORE = os.environ.get("SF_BENCH_STORE", "memory")
EAGER = os.environ.get("SF_BENCH_EAGER", "1") == "1"
BROKER = os.environ.get("SF_BENCH_BROKER", "memory://")
BACKEND = os.environ.get("SF_BENCH_BACKEND") or None
KEYSPACE = os.environ.get("SF_BENCH_KEYSPACE", "sf_bench")
HOST = os.environ.get("SF_BENCH_CASSANDRA_HOST", "127.0.0.1")
PORT = int(os.environ.get("SF_BENCH_CASSANDRA_PORT", "9042"))
CHUNK_SIZE = int(os.environ.get("SF_BENCH_CHUNK_SIZE", "100"))
MAX_LENGTH = int(os.environ.get("SF_BENCH_MAX_LENGTH", "1000"))
TABLE = "sf_timeline"

app = Celery("sf_bench", broker=BROKER, backend=BACKEND)
app.conf.update(
    task_serializer="pickle",  # Stream Framework's tasks carry Python objects: pickle or nothing
    result_serializer="json",
    accept_content=["pickle", "json"],
    task_always_eager=EAGER,
    task_eager_propagates=True,
    task_ignore_result=BACKEND is None,
    worker_prefetch_multiplier=4,
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    result_expires=3600,
)
app.set_default()

from stream_framework import settings as sf_settings  # noqa: E402

sf_settings.STREAM_CASSANDRA_HOSTS = [HOST]
sf_settings.STREAM_DEFAULT_KEYSPACE = KEYSPACE
_driver_kwargs: dict[str, object] = {"protocol_version": 4, "port": PORT}
try:
    from cassandra.io.libevreactor import LibevConnection

    _driver_kwargs["connection_class"] = LibevConnection
except ImportError:  # pragma: no cover
    pass
sf_settings.CASSANDRA_DRIVER_KWARGS = _driver_kwargs

from stream_framework.feed_managers.base import FanoutPriority, Manager  # noqa: E402
from stream_framework.verbs.base import Add, Comment, Love  # noqa: E402
from stream_framework.verbs.base import Follow as FollowVerb  # noqa: E402

VERBS = {1: FollowVerb, 2: Comment, 3: Love, 4: Add}

if STORE == "cassandra":
    os.environ.setdefault("CQLENG_ALLOW_SCHEMA_MANAGEMENT", "1")
    from stream_framework.feeds.cassandra import CassandraFeed

    class TimelineFeed(CassandraFeed):
        timeline_cf_name = TABLE
        key_format = "timeline:%(user_id)s"
        max_length = MAX_LENGTH

    class UserFeed(CassandraFeed):
        timeline_cf_name = TABLE
        key_format = "user:%(user_id)s"
        max_length = 10**6

    @signals.worker_process_init.connect
    def _reconnect(**_: object) -> None:
        """The import-time connection does not survive the prefork: connect in each child."""
        from stream_framework.storage.cassandra.connection import setup_connection

        setup_connection()

else:
    from stream_framework.feeds.memory import Feed as MemoryFeed

    class TimelineFeed(MemoryFeed):  # type: ignore[no-redef]
        key_format = "timeline:%(user_id)s"
        max_length = MAX_LENGTH

    class UserFeed(MemoryFeed):  # type: ignore[no-redef]
        key_format = "user:%(user_id)s"
        max_length = 10**6


FOLLOWERS: dict[int, dict[str, list[int]]] = {}  # the graph; only in the producing process
SPAWNED: list[object] = []  # AsyncResults of the fanout tasks (worker mode)


class BenchManager(Manager):
    """The manager of the benchmark: one flat feed, the graph of the shared workload."""

    feed_classes = {"normal": TimelineFeed}
    user_feed_class = UserFeed
    fanout_chunk_size = CHUNK_SIZE

    def get_user_follower_ids(self, user_id: int) -> dict[str, list[int]]:
        groups = FOLLOWERS.get(user_id, {})
        return {
            FanoutPriority.HIGH: groups.get("high", []),
            FanoutPriority.LOW: groups.get("low", []),
        }

    def create_fanout_tasks(self, *args: object, **kwargs: object) -> list[object]:
        tasks: list[object] = super().create_fanout_tasks(*args, **kwargs)
        if not EAGER:
            SPAWNED.extend(tasks)
        return tasks


def _setup_cassandra() -> None:
    from cassandra.cqlengine.management import create_keyspace_simple, sync_table
    from stream_framework.storage.cassandra.timeline_storage import CassandraTimelineStorage

    create_keyspace_simple(KEYSPACE, 1)
    sync_table(CassandraTimelineStorage.get_model(TimelineFeed.timeline_model, TABLE))


def _activities(rows: list[list[int]], repeat: int) -> list[Any]:
    """Stream Framework activities of the workload's rows in pass ``repeat``."""
    from stream_framework.activity import Activity

    out: list[Any] = []
    for actor, verb, obj, target, ts_us in rows:
        moment = datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=ts_us + repeat * 1000)
        out.append(Activity(actor, VERBS[verb], obj + repeat * 1_000_000, target, time=moment))
    return out


def _wait(started: float) -> float:
    """Wait for every spawned task (worker mode); return when the last one finished."""
    from celery.result import ResultSet

    results = ResultSet(list(SPAWNED))
    results.join(timeout=float(os.environ.get("SF_BENCH_TIMEOUT", "900")), propagate=True, interval=0.05)
    done = [r.date_done for r in results.results]
    last = max(done)
    moment: datetime.datetime = datetime.datetime.fromisoformat(last) if isinstance(last, str) else last
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


def run(args: argparse.Namespace) -> dict[str, object]:
    with open(args.workload, encoding="utf-8") as fh:
        workload = json.load(fh)
    FOLLOWERS.update({int(k): v for k, v in workload["followers"].items()})
    if STORE == "cassandra":
        _setup_cassandra()
    manager = BenchManager()
    runs = []
    for repeat in range(args.repeats):
        if STORE == "memory":
            from stream_framework.storage import memory

            memory.timeline_store.clear()
            memory.activity_store.clear()
        activities = _activities(workload["activities"], repeat + args.repeat_offset)
        SPAWNED.clear()
        deliveries = 0
        wall0 = time.time()
        t0 = time.perf_counter()
        for activity in activities:
            manager.add_user_activity(activity.actor_id, activity)
            groups = FOLLOWERS.get(activity.actor_id, {})
            deliveries += 1 + len(groups.get("high", [])) + len(groups.get("low", []))
        enqueue_s = time.perf_counter() - t0
        seconds = enqueue_s if EAGER else _wait(wall0) - wall0
        runs.append({"seconds": seconds, "deliveries": deliveries, "enqueue_seconds": enqueue_s,
                     "tasks": len(SPAWNED), "rate": deliveries / seconds})
        print(f"sf {STORE} {'eager' if EAGER else 'worker'} run {repeat}: {deliveries} deliveries "
              f"in {seconds:.2f}s", file=sys.stderr)
    if STORE == "cassandra" and args.drop:
        from cassandra.cqlengine.management import drop_keyspace

        drop_keyspace(KEYSPACE)
    return {"store": STORE, "eager": EAGER, "runs": runs}


def main() -> int:
    parser = argparse.ArgumentParser(prog="sf_bench", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--workload", required=True)
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--repeat-offset", type=int, default=0)
    r.add_argument("--drop", action="store_true", help="drop the keyspace at the end")
    args = parser.parse_args()
    result = run(args)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    # Run as __main__, the manager and feed classes would pickle as __main__.X, which a worker
    # cannot load: the driver must import this module by its name.
    sys.exit("run it as: python -c 'import sf_bench; sf_bench.main()' run ...")
