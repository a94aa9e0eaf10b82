"""Hybrid fanout on Cassandra: the ``pulled_accounts`` table, one partition (``shard = 0``) that
every timeline read fetches whole; it holds only the accounts over the pull threshold. Only the
planner of an account writes its row (``fanout.pull``). ``CassandraStore`` inherits these methods."""

from __future__ import annotations

from typing import Any

from ..settings import Settings
from ..store import PullState
from .bridge import DriverBridge
from .routing import consistency_level
from .statements import idempotent, prepare_all


class _Statements:
    def __init__(self, prepare: Any, ks: str) -> None:
        def p(cql: str) -> Any:
            return idempotent(prepare, cql)

        self.put = p(f"INSERT INTO {ks}.pulled_accounts (shard, account, since, leaving) VALUES (0, ?, ?, ?)")
        self.drop = p(f"DELETE FROM {ks}.pulled_accounts WHERE shard = 0 AND account = ?")
        self.one = p(f"SELECT since, leaving FROM {ks}.pulled_accounts WHERE shard = 0 AND account = ?")
        self.all = p(f"SELECT account, since, leaving FROM {ks}.pulled_accounts WHERE shard = 0")


class PulledAccounts:
    """The ``Store`` methods of pulled accounts for ``CassandraStore`` (a mixin)."""

    _bridge: DriverBridge
    keyspace: str
    session: Any
    settings: Settings
    _pulled_stmts: _Statements | None = None

    async def pull_state(self, account: str) -> PullState | None:
        s = await self._pulled_statements()
        rows = await self._bridge.fetch_all(s.one.bind((account,)), "pull_state")
        return PullState(int(rows[0][0]), int(rows[0][1] or 0)) if rows else None

    async def pulled_accounts(self) -> dict[str, PullState]:
        s = await self._pulled_statements()
        rows = await self._bridge.fetch_all(s.all.bind(()), "pulled_accounts")
        return {account: PullState(int(since), int(leaving or 0)) for account, since, leaving in rows}

    async def set_pull_state(self, account: str, state: PullState | None) -> None:
        s = await self._pulled_statements()
        bound = s.drop.bind((account,)) if state is None else s.put.bind((account, state.since, state.leaving))
        await self._bridge.execute(bound, what="set_pull_state")

    async def _pulled_statements(self) -> _Statements:
        if self._pulled_stmts is None:
            reads = consistency_level(self.settings.read_consistency)
            self._pulled_stmts = await prepare_all(_Statements, self.session, self.keyspace, "pulled-account", reads)
        return self._pulled_stmts
