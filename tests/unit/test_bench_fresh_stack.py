"""The benchmark with ``--fresh-stack`` wipes the node before every case: a graph loaded into a
keyspace before the wipe must be loaded again after it (cases 7 and 5 ran on no edges and tracked
10-13 rows of 21,236 and 36,050)."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from rich.console import Console

from benchmarks.harness import stores
from benchmarks.harness.context import Context
from fanout import Settings


def test_a_graph_is_loaded_again_after_the_node_was_wiped(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[list[str]] = []

    def load(session: Any, keyspace: str, edges: Any) -> float:
        loads.append([e[0] for e in edges])
        return 0.01

    monkeypatch.setattr(stores, "load_cassandra_edges", load)
    ctx = Context(quick=True, repeats=1, console=Console(quiet=True), settings=Settings())
    store: Any = SimpleNamespace(keyspace=ctx.keyspace("pipeline"), session=None)
    edges = [("alice", "bob", 0), ("carol", "bob", 0)]

    asyncio.run(stores.ensure_edges(ctx, store, edges))
    asyncio.run(stores.ensure_edges(ctx, store, edges))
    assert loads == [["alice", "carol"]]  # once per keyspace while its data lives

    ctx.data_wiped()
    assert ctx.keyspaces == []
    asyncio.run(stores.ensure_edges(ctx, store, edges))
    assert loads == [["alice", "carol"], ["alice", "carol"]]
