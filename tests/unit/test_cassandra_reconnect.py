"""A store tries a node marked down again every 2 s at most (``RECONNECT_MAX_S``), for as long as
it is down: the driver's default waits up to 600 s between attempts (a node back after a 40 s
outage went unused for up to ~30 s more), and an ``ExponentialReconnectionPolicy`` gives up after
64 attempts unless told not to (at 2 s, ~2 minutes: a one-node store would never come back).
The recovery itself, Cassandra stopped and restarted mid-fanout, is
``tests/chaos/test_server_restarts.py``; that ``CassandraStore.connect`` builds its cluster with
this policy, ``tests/contract/test_store_contract.py``."""

from __future__ import annotations

import itertools

from fanout.cassandra.routing import RECONNECT_FIRST_S, RECONNECT_MAX_S, reconnection_policy

JITTER = 1.15  # the driver adds up to 15% to each delay


def test_the_schedule_never_ends_and_never_waits_more_than_two_seconds() -> None:
    policy = reconnection_policy()
    delays = list(itertools.islice(policy.new_schedule(), 5_000))  # ~2.8 hours of attempts at 2 s
    assert len(delays) == 5_000
    assert RECONNECT_MAX_S <= 2.0
    assert max(delays) <= RECONNECT_MAX_S
    assert delays[0] <= RECONNECT_FIRST_S * JITTER <= 0.6
    assert sum(delays[-100:]) >= 100 * RECONNECT_MAX_S * 0.8  # backs off up to the bound, then stays there
