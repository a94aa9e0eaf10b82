"""The keyspace and its tables (DDL), and the check that a keyspace name is safe to put in CQL.

The layout and what each table means: the ``fanout.cassandra`` package docstring.
"""

from __future__ import annotations

import re
from typing import Final

from ..errors import ConfigError

DDL_TIMEOUT: Final = 120.0  # seconds: schema changes (and TRUNCATE) wait for every node to agree
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,47}")


def check_name(name: str) -> str:
    """``name`` when it is a valid unquoted keyspace name (identifiers cannot be bound: they go into the CQL)."""
    if not _NAME.fullmatch(name):
        raise ConfigError(f"Cassandra keyspace {name!r} must match {_NAME.pattern}")
    return name


def create_schema(ks: str, replication: int) -> list[str]:
    """The statements that create the keyspace ``ks`` and its tables, in order (each is idempotent)."""
    return [
        f"CREATE KEYSPACE IF NOT EXISTS {ks} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {replication}}}",
        # Leveled compaction: timelines are read-heavy and rewritten (upserts, removes, range
        # trims), and a read should touch few SSTables. Not TWCS: write timestamps are activity
        # times and REMOVED_WRITE_TS, not arrival times.
        f"""CREATE TABLE IF NOT EXISTS {ks}.timeline (
            feed text, ts bigint, activity_id text,
            actor text, verb text, object text, target text, extra text,
            PRIMARY KEY ((feed), ts, activity_id)
        ) WITH CLUSTERING ORDER BY (ts DESC, activity_id DESC)
          AND compaction = {{'class': 'LeveledCompactionStrategy'}}
          AND comment = 'fanout: one partition per feed, newest first'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.activities (
            activity_id text PRIMARY KEY,
            actor text, verb text, object text, target text, ts bigint, extra text, removed boolean,
            to_feeds list<text>
        ) WITH comment = 'fanout: activity registry'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.followers (
            followee text, follower text, following boolean, active_until bigint, unfollowed_at bigint,
            PRIMARY KEY ((followee), follower)
        ) WITH comment = 'fanout: follow graph by followee'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.following (
            follower text, followee text, following boolean, decided_at bigint, decided_in int,
            PRIMARY KEY ((follower), followee)
        ) WITH comment = 'fanout: follow graph by follower'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.notification_marks (
            feed text, group_id text, seen bigint, read bigint,
            PRIMARY KEY ((feed), group_id)
        ) WITH comment = 'fanout: seen/read marks of notification feeds, the greatest value wins'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.users (
            user text PRIMARY KEY, last_active bigint
        ) WITH comment = 'fanout: when a user was last active'""",
        # hybrid fanout (fanout.pull): the pulled accounts, all in one small partition (shard 0)
        f"""CREATE TABLE IF NOT EXISTS {ks}.pulled_accounts (
            shard int, account text, since bigint, leaving bigint,
            PRIMARY KEY ((shard), account)
        ) WITH comment = 'fanout: accounts merged at read time instead of fanned out'""",
        # delivery tracing (fanout.tracing): a row per op and priority planned, a row per chunk landed
        f"""CREATE TABLE IF NOT EXISTS {ks}.delivery_plans (
            activity_id text, op text, priority text, chunks int, feeds int, planned_at bigint,
            PRIMARY KEY ((activity_id), op, priority)
        ) WITH comment = 'fanout: chunks and feeds planned per activity, op and priority'""",
        f"""CREATE TABLE IF NOT EXISTS {ks}.delivery_chunks (
            activity_id text, op text, chunk text, priority text, feeds int, landed bigint,
            PRIMARY KEY ((activity_id), op, chunk)
        ) WITH comment = 'fanout: chunks written per activity and op, keyed by their first feed'""",
    ]


#: Columns added to a table after its first release, as (table, column, CQL type): ``migrate`` adds
#: the ones an older keyspace lacks (``CREATE TABLE IF NOT EXISTS`` leaves an existing table as it is).
ADDED_COLUMNS: Final = (
    ("following", "decided_at", "bigint"), ("activities", "to_feeds", "list<text>"), ("following", "decided_in", "int"),
    ("followers", "unfollowed_at", "bigint"),
)

#: Which columns a table of a keyspace has (bound: keyspace name, table name).
TABLE_COLUMNS: Final = "SELECT column_name FROM system_schema.columns WHERE keyspace_name = ? AND table_name = ?"


def add_column(ks: str, table: str, column: str, cql_type: str) -> str:
    """The statement that adds ``column`` to ``ks.table``."""
    return f"ALTER TABLE {ks}.{table} ADD {column} {cql_type}"


#: The compaction strategies measured for the timeline table (``benchmarks/server_config.py``): LCS
#: stays (``create_schema``), UCS did not clear the bar (README: Cassandra server settings).
TIMELINE_COMPACTIONS: Final = {"LCS": "LeveledCompactionStrategy", "UCS": "UnifiedCompactionStrategy"}


def timeline_compaction(ks: str, strategy: str) -> str:
    """The statement that makes ``ks.timeline`` compact with ``strategy`` (a key of ``TIMELINE_COMPACTIONS``)."""
    return f"ALTER TABLE {ks}.timeline WITH compaction = {{'class': '{TIMELINE_COMPACTIONS[strategy]}'}}"


def drop_schema(ks: str) -> str:
    """The statement that drops the keyspace ``ks`` and everything in it."""
    return f"DROP KEYSPACE IF EXISTS {ks}"
