"""A raw Cassandra client process for the ceiling's reference line (case 1) with acsylla, Python
bindings of the DataStax C/C++ driver (a native core): what the same rows cost without
cassandra-driver's pure-Python request path. Optional: the ``bench-native`` extra.

    python -m benchmarks.cases.case1_native_writer KEYSPACE [PROTOCOL_VERSION]

Serves ``benchmarks.harness.rawload``'s commands like ``case1_raw_writer``: prepared statements,
UNLOGGED batches for grouped strategies, at most ``in_flight`` requests awaited at once.
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

from benchmarks.harness.rawload import INSERT, NATIVE_PROTOCOL, Row, Strategy, request_groups, serve
from fanout import Settings

RETRIES = 5


def acsylla() -> Any:
    """The optional native driver (untyped)."""
    return importlib.import_module("acsylla")


async def connect(settings: Settings, keyspace: str, protocol: int) -> tuple[Any, Any, Any]:
    cluster = acsylla().create_cluster(list(settings.cassandra_hosts), port=settings.cassandra_port,
                                     protocol_version=protocol, request_timeout=30.0,
                                     log_level="error")  # not one line per multi-partition batch
    session = await cluster.create_session(keyspace=keyspace)
    insert = await session.create_prepared(INSERT.format(ks=keyspace))
    return cluster, session, insert


async def write_all(session: Any, insert: Any, groups: list[list[Row]], in_flight: int) -> int:
    """Send every group, at most ``in_flight`` at once; a failed request is sent again, up to
    ``RETRIES`` times. Returns the requests sent, retries included."""
    native = acsylla()
    slots = asyncio.Semaphore(in_flight)
    sent = 0

    async def one(group: list[Row]) -> None:
        nonlocal sent
        try:
            for attempt in range(RETRIES + 1):
                sent += 1
                try:
                    if len(group) == 1:
                        await session.execute(insert.bind(list(group[0])))
                    else:
                        batch = native.create_batch_unlogged()
                        for row in group:
                            batch.add_statement(insert.bind(list(row)))
                        await session.execute_batch(batch)
                    return
                except Exception:
                    if attempt == RETRIES:
                        raise
        finally:
            slots.release()

    tasks = []
    for group in groups:
        await slots.acquire()
        tasks.append(asyncio.ensure_future(one(group)))
    await asyncio.gather(*tasks)
    return sent


def main() -> int:
    keyspace = sys.argv[1]
    settings = Settings.from_env()
    # the C/C++ driver refuses v5 unless told to use its beta protocol
    protocol = int(sys.argv[2]) if len(sys.argv) > 2 else min(settings.cassandra_protocol_version or 4, NATIVE_PROTOCOL)
    loop = asyncio.new_event_loop()
    _cluster, session, insert = loop.run_until_complete(connect(settings, keyspace, protocol))

    def prepare(strategy: Strategy, rows: list[Row]) -> list[list[Row]]:
        return request_groups(strategy, rows)  # one node: one replica set

    def write(groups: list[list[Row]], strategy: Strategy) -> int:
        return loop.run_until_complete(write_all(session, insert, groups, strategy.in_flight))

    try:
        serve(prepare, write)
    finally:
        loop.run_until_complete(session.close())
        loop.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
