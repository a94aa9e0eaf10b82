"""Times: an accepted time never breaks a read or escapes its write-timestamp band.

An activity or follow ``time`` must lie within [accepted - FANOUT_MAX_PAST_DAYS, accepted +
FANOUT_MAX_FUTURE_SKEW_SECONDS], where ``accepted`` is the Kafka record timestamp (the clock in the
eager mode and at produce time), and every time, the record timestamp included, within
[MIN_TIME_US, MAX_TIME_US]. Anything else is refused with reason ``time``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fanout import Fanout, InvalidEvent, MemoryStore, Settings
from fanout.activity import FOLLOW_BAND, MAX_TIME_US, from_micros, to_micros
from fanout.cli import main
from fanout.codec import decode_activity_event, follow_event
from fanout.producer import Producer

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
HOSTILE_TIMES = [
    "0001-01-01T00:30:00+01:00",  # year 0 once in UTC
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59Z",
    "9999-12-31T23:30:00-01:00",  # year 10000 once in UTC
    "9999-12-31T23:59:59Z",
    "4000-01-01T00:00:00Z",  # would escape the write-time bands and survive unfollows
    "3112-01-01T00:00:00Z",
]


def _check(doc: dict[str, Any], accepted: datetime = NOW, settings: Settings | None = None) -> int:
    from fanout.codec import event_time_us

    event = decode_activity_event(json.dumps({"actor": "a", "verb": "v", "object": "o", **doc}))
    return event_time_us(event, to_micros(accepted), settings or Settings())


@pytest.mark.parametrize("when", HOSTILE_TIMES)
def test_times_outside_the_absolute_range_are_refused(when: str) -> None:
    with pytest.raises(InvalidEvent, match=r"`\$.time`") as caught:
        _check({"time": when})
    assert caught.value.reason == "time"


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(timedelta(0), True), (timedelta(seconds=600), True), (timedelta(seconds=601), False),
     (timedelta(hours=1), False), (timedelta(days=-3650), True), (timedelta(days=-3651), False)],
)
def test_the_window_around_the_accepted_time(offset: timedelta, ok: bool) -> None:
    doc = {"time": (NOW + offset).isoformat()}
    if ok:
        assert _check(doc) == to_micros(NOW + offset)
    else:
        with pytest.raises(InvalidEvent, match="FANOUT_MAX_") as caught:
            _check(doc)
        assert caught.value.reason == "time"


def test_the_window_comes_from_the_settings() -> None:
    wide = Settings().replace(max_future_skew_seconds=7200, max_past_days=36500)
    assert _check({"time": (NOW + timedelta(hours=1)).isoformat()}, settings=wide)
    assert _check({"time": "1990-01-01T00:00:00Z"}, settings=wide)
    assert Settings.from_env({"FANOUT_MAX_FUTURE_SKEW_SECONDS": "5", "FANOUT_MAX_PAST_DAYS": "1"}).max_past_days == 1


def test_a_record_timestamp_out_of_range_is_refused_too() -> None:
    for accepted in (datetime(4000, 1, 1, tzinfo=UTC), datetime(1960, 1, 1, tzinfo=UTC)):
        with pytest.raises(InvalidEvent, match="accepted") as caught:
            _check({}, accepted=accepted)
        assert caught.value.reason == "time"
    assert _check({}) == to_micros(NOW)  # no time: the accepted time


async def test_eager_mode_refuses_them_and_reads_keep_working() -> None:
    fanout = Fanout(MemoryStore())
    await fanout.follow("f", "a")
    for when in HOSTILE_TIMES:
        with pytest.raises(InvalidEvent) as caught:
            await fanout.add(actor="a", verb="pin", object=when, time=when)
        assert caught.value.reason == "time"
    with pytest.raises(InvalidEvent, match=r"`\$.time`"):
        await fanout.handle_follow(follow_event("g", "a", time="4000-01-01T00:00:00Z"))
    assert await fanout.read("f") == []
    assert await fanout.store.following("g") == []


async def test_an_activity_of_year_4000_cannot_survive_an_unfollow() -> None:
    fanout = Fanout(MemoryStore())
    await fanout.follow("f", "a")
    await fanout.add(actor="a", verb="pin", object="now")
    with pytest.raises(InvalidEvent):
        await fanout.add(actor="a", verb="pin", object="far", time="4000-01-01T00:00:00Z")
    await fanout.unfollow("f", "a")
    assert await fanout.read("f") == []


async def test_a_remove_time_only_names_the_add() -> None:
    """A remove writes at REMOVED_WRITE_TS whatever its time, which only derives the add's id."""
    fanout = Fanout(MemoryStore())
    removal = decode_activity_event(b'{"actor":"a","verb":"v","object":"o","time":"4000-01-01T00:00:00Z",'
                                    b'"op":"remove"}')
    result = await fanout.handle_activity(removal)
    assert result.activity is None and result.op == "remove"


aware_times = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
    timezones=st.builds(timezone, st.timedeltas(min_value=timedelta(hours=-23, minutes=-59),
                                                max_value=timedelta(hours=23, minutes=59))),
)


@settings(max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(when=aware_times | st.sampled_from([datetime.fromisoformat(t) for t in HOSTILE_TIMES]),
       skew=st.integers(0, 10**6), past=st.integers(0, 10**6))
async def test_no_accepted_time_breaks_a_read(when: datetime, skew: int, past: int) -> None:
    settings_ = Settings(max_future_skew_seconds=skew, max_past_days=past)
    fanout = Fanout(MemoryStore(), settings_)
    await fanout.follow("f", "a")
    try:
        added = await fanout.add(actor="a", verb="pin", object="o", time=when)
    except InvalidEvent as exc:
        assert exc.reason == "time"
        return
    assert 0 <= added.ts < FOLLOW_BAND and added.ts <= MAX_TIME_US
    for activity in await fanout.read("f") + await fanout.read("a", kind="user"):
        assert activity.time == from_micros(activity.ts)
        activity.time.isoformat()


async def test_producers_refuse_them_before_sending() -> None:
    producer = Producer()  # never started: nothing reaches Kafka
    far = datetime.now(UTC) + timedelta(days=1)
    with pytest.raises(InvalidEvent, match="FANOUT_MAX_FUTURE_SKEW_SECONDS") as caught:
        await producer.send_activity(actor="a", verb="v", object="o", time=far)
    assert caught.value.reason == "time"
    with pytest.raises(InvalidEvent):
        await producer.send_follow("a", "b", time=far)


def test_cli_publish_refuses_them_with_exit_2(capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FANOUT_KAFKA_BOOTSTRAP", "127.0.0.1:9")  # nothing listens: sending would fail
    assert main(["publish", "--actor", "a", "--verb", "v", "--object", "o", "--time", "4000-01-01T00:00:00Z"]) == 2
    assert "`$.time`" in capsys.readouterr().err
    assert main(["publish", "--follow", "a", "b", "--time", "0001-01-01T00:30:00+01:00"]) == 2
