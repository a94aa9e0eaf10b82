"""The benchmark's raw strategies: a windowed replica strategy groups each feed's rows only within
its window (what one writer batch can do), the plain one over the whole pass."""

from __future__ import annotations

from benchmarks.harness.rawload import Row, Strategy, request_groups


def _rows(n: int, feeds: int) -> list[Row]:
    return [(f"timeline:u{i % feeds}", i, f"a{i}", "ann", "pin", "o", "", i) for i in range(n)]


def _rows_per_feed_per_request(groups: list[list[Row]]) -> float:
    return sum(len(g) for g in groups) / sum(len({r[0] for r in g}) for g in groups)


def test_a_window_groups_only_within_itself_and_loses_no_row() -> None:
    rows = _rows(600, feeds=50)  # every feed 12 times, once in each run of 50 rows
    whole = request_groups(Strategy("replica", rows=40), rows)
    windowed = request_groups(Strategy("replica", rows=40, window=50), rows)
    for groups in (whole, windowed):
        assert sorted(r for g in groups for r in g) == sorted(rows)
        assert all(len(g) <= 40 for g in groups)
    assert _rows_per_feed_per_request(whole) >= 10  # a feed's 12 rows sit together
    assert _rows_per_feed_per_request(windowed) == 1  # each window holds a feed once
    for start in range(0, 600, 50):  # no request mixes two windows
        window = set(rows[start : start + 50])
        assert all(set(g) <= window or not set(g) & window for g in windowed)


def test_the_windowed_strategy_says_so_in_its_name() -> None:
    assert "grouped within 10,000-row windows" in Strategy("replica", 40, 32, window=10_000).name
    assert "window" not in Strategy("replica", 40, 32).name
