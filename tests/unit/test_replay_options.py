"""A replay's options checked into a plan, and the commit metadata that decides resume or conflict."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fanout.agents.replay_options import ReplayOptions, offsets_for, plan_replay
from fanout.agents.replay_progress import CommitMark, ReplayConflict, resumable
from fanout.errors import ConfigError
from fanout.settings import Settings

SETTINGS = Settings().replace(topic_prefix="p.")


def test_a_plan_names_what_the_replay_writes_not_where_it_starts() -> None:
    full = plan_replay(SETTINGS, ReplayOptions())
    assert (full.group, full.description, full.users, full.catch_up) == ("p.replay", "full replay", None, True)
    later = plan_replay(SETTINGS, ReplayOptions(since=datetime(2025, 1, 1, tzinfo=UTC), start_offsets={"follows": 3}))
    assert later.since_ms == 1735689600000 and later.target == full.target
    for other in (ReplayOptions(users=["u"]), ReplayOptions(kind="news"), ReplayOptions(end_offsets={"follows": 9})):
        assert plan_replay(SETTINGS, other).target != full.target
    bounded = plan_replay(SETTINGS, ReplayOptions(end_offsets={"activities": {0: 5}}, group="g"))
    assert (bounded.group, bounded.catch_up) == ("g", False)
    assert plan_replay(SETTINGS, ReplayOptions(kind="news")).settings.feed_kinds == ("news",)


@pytest.mark.parametrize("options", [
    ReplayOptions(users=["", ""]),
    ReplayOptions(kind="a:b"),
    ReplayOptions(kind="user"),
    ReplayOptions(drop_timelines=True, since=0),
    ReplayOptions(drop_timelines=True, users=["u"]),
    ReplayOptions(since=datetime(2025, 1, 1)),  # naive
])
def test_bad_options_are_refused(options: ReplayOptions) -> None:
    with pytest.raises(ConfigError):
        plan_replay(SETTINGS, options)


def test_offsets_for_one_topic() -> None:
    assert offsets_for({"activities": 7}, "activities", "p.activities", [0, 1]) == {0: 7, 1: 7}
    assert offsets_for({"activities": 7}, "follows", "p.follows", [0]) == {}
    assert offsets_for({"follows": {1: 4}}, "follows", "p.follows", [0, 1]) == {1: 4}
    with pytest.raises(ConfigError):
        offsets_for({"follows": {2: 4}}, "follows", "p.follows", [0, 1])
    with pytest.raises(ConfigError):
        offsets_for({"users": 1}, "follows", "p.follows", [0])


def test_the_same_unfinished_replay_resumes_and_another_one_conflicts() -> None:
    plan = plan_replay(SETTINGS, ReplayOptions())
    running = CommitMark.of(plan, "running").encode()
    done = CommitMark.of(plan, "done").encode()
    assert CommitMark.decode(running) == CommitMark(plan.target, "running", "full replay")
    assert resumable(plan, []) is None
    assert resumable(plan, [done, done]) is None  # a finished replay starts over
    assert resumable(plan, [done, running]) == "full replay"
    other = plan_replay(SETTINGS, ReplayOptions(users=["u"]))
    with pytest.raises(ReplayConflict):
        resumable(other, [running])
    assert resumable(other, [done]) is None
    with pytest.raises(ReplayConflict):
        resumable(plan, ["someone else's metadata", done])
