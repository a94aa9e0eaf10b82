"""A raw Cassandra client process for the ceiling (case 1) with cassandra-driver: no fanout code
on the write path.

    python -m benchmarks.cases.case1_raw_writer KEYSPACE [PROTOCOL_VERSION]

Connects once as ``CassandraStore`` does (same driver, reactor and load balancing; protocol from
the settings unless given), then serves ``benchmarks.harness.rawload``'s commands: the requests
are built *while* timing (binding is client work) and sent with
``cassandra.concurrent.execute_concurrent``, the driver's fastest path; requests that fail (a
write timeout on a loaded node) are sent again, and counted in the requests answered.
"""

from __future__ import annotations

import asyncio
import sys

from benchmarks.harness.rawload import INSERT, Row, Strategy, request_groups, requests_of, serve
from benchmarks.harness.stores import connect_store
from fanout import Settings

RETRIES = 5


def main() -> int:
    keyspace = sys.argv[1]
    settings = Settings.from_env()
    if len(sys.argv) > 2:
        settings = settings.replace(cassandra_protocol_version=int(sys.argv[2]))
    store = asyncio.run(connect_store(settings, keyspace, migrate=False))
    session = store.session
    metadata = store.cluster.metadata
    insert = session.prepare(INSERT.format(ks=keyspace))
    insert.is_idempotent = True

    def replicas(feed: str) -> frozenset[str]:
        return frozenset(str(host.address) for host in metadata.get_replicas(keyspace, feed.encode()))

    def prepare(strategy: Strategy, rows: list[Row]) -> list[list[Row]]:
        return request_groups(strategy, rows, replicas)

    def write(groups: list[list[Row]], strategy: Strategy) -> int:
        """Send every group; a timed-out request is sent again (idempotent writes), like any client
        would, at most ``RETRIES`` rounds. Returns the requests sent, retries included."""
        from cassandra.concurrent import execute_concurrent

        sent = 0
        todo = groups
        for _ in range(RETRIES + 1):
            sent += len(todo)
            results = execute_concurrent(session, requests_of(insert, todo), concurrency=strategy.in_flight,
                                         raise_on_first_error=False)
            failed = [(group, r.result_or_exc) for group, r in zip(todo, results, strict=True) if not r.success]
            if not failed:
                return sent
            todo = [group for group, _ in failed]
        raise RuntimeError(f"{len(failed)} requests still failed after {RETRIES} retries: {failed[0][1]!r}")

    try:
        serve(prepare, write)
    finally:
        asyncio.run(store.close())
    return 0


if __name__ == "__main__":
    sys.exit(main())
