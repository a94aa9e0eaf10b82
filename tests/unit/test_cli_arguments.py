"""Arguments of the read commands are checked before any server is asked, as events and HTTP check
them: ids, feed kinds, limits."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fanout.codec import MAX_ID_BYTES
from fanout.errors import EXIT_UNAVAILABLE

OVERSIZE = "é" * (MAX_ID_BYTES // 2 + 1)  # under 256 characters, over 256 bytes of UTF-8


@pytest.mark.parametrize(
    "argv",
    [
        ["trace", ""],
        ["trace", OVERSIZE],
        ["feed", ""],
        ["feed", OVERSIZE],
        ["feed", "ann", "--before", ""],
        ["notifications", ""],
        ["rebuild", "ann", ""],
        ["replay", "--users", "ann," + OVERSIZE],
    ],
)
def test_a_bad_id_is_refused_in_one_line_without_a_server(argv: list[str]) -> None:
    done = _fanout(*argv)
    assert done.returncode == 2
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"1 to {MAX_ID_BYTES} bytes of UTF-8" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "Cassandra" not in done.stderr


def _fanout(*argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    base = {"FANOUT_CASSANDRA_PORT": "1", "PATH": "/usr/bin:/bin"}  # nothing listens there
    return subprocess.run([sys.executable, "-m", "fanout", *argv], capture_output=True, text=True,
                          env={**base, **(env or {})}, timeout=60)


@pytest.mark.parametrize(
    ("argv", "argument", "rule"),
    [
        (["feed", "ann", "--limit", "0"], "--limit", "must be 1 or more, not 0"),
        (["feed", "ann", "--limit", "many"], "--limit", "must be an integer, not 'many'"),
        (["notifications", "ann", "--limit", "-5"], "--limit", "must be 1 or more, not -5"),
        (["dead", "--limit", "0"], "--limit", "must be 1 or more"),
        (["dead", "--reason", "nope"], "--reason", "invalid choice: 'nope' (choose from 'json', 'schema'"),
        (["dead", "--agent", "writer"], "--agent", "invalid choice: 'writer' (choose from 'planner'"),
        (["serve", "--port", "99999"], "--port", "must be from 1 to 65535, not 99999"),
        (["worker", "planner", "--metrics-port", "0"], "--metrics-port", "must be from 1 to 65535"),
        (["worker", "planner", "--batch-max-records", "0"], "--batch-max-records", "must be 1 or more"),
        (["worker", "planner", "--grace", "-1"], "--grace", "must be 0 or more seconds"),
        (["worker", "planner", "--grace", "nan"], "--grace", "must be 0 or more seconds"),
        (["worker", "all", "--high-writers", "-1"], "--high-writers", "must be 0 or more"),
        (["demo", "--users", "1"], "--users", "must be 2 or more, not 1"),
        (["demo", "--activities", "-1"], "--activities", "must be 0 or more"),
    ],
)
def test_a_bad_number_is_refused_in_one_line_without_a_server(argv: list[str], argument: str, rule: str) -> None:
    done = _fanout(*argv)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and f"argument {argument}: {rule}" in errors[0], done.stderr
    assert "Traceback" not in done.stderr and "Kafka" not in done.stderr and "Cassandra" not in done.stderr


def test_an_unknown_feed_kind_is_refused_naming_the_known_ones() -> None:
    done = _fanout("feed", "ann", "--kind", "bogus")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "fanout: unknown feed kind 'bogus': one of timeline, user, aggregated, notification "
        "(FANOUT_FEED_KINDS, FANOUT_USER_FEED_KIND, FANOUT_AGGREGATED_KINDS)"
    ]


@pytest.mark.parametrize("users", ["", " , ,"])
def test_replay_users_naming_nobody_is_refused_not_taken_for_everybody(users: str) -> None:
    done = _fanout("replay", "--users", users)
    assert done.returncode == 2, done.stderr
    assert "argument --users: must name at least one id" in done.stderr and "Kafka" not in done.stderr


@pytest.mark.parametrize("command", [["rebuild", "ann"], ["replay"]])
def test_a_feed_kind_the_agents_do_not_fan_into_is_refused(command: list[str]) -> None:
    """``rebuild --kind nope`` wrote 368 rows into feeds no read serves and said it rebuilt them."""
    done = _fanout(*command, "--kind", "nope")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == [
        "fanout: --kind 'nope' is not a fanned feed kind: one of timeline (FANOUT_FEED_KINDS; add a new kind "
        "there first, so that reads serve it too)"
    ]


@pytest.mark.parametrize("command", [["lag"], ["topics", "check"], ["dead"], ["publish", "--follow", "7", "42"]])
def test_kafka_not_reachable_is_one_line_without_a_traceback(command: list[str]) -> None:
    done = _fanout(*command, env={"FANOUT_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr  # 75: try again later
    assert done.stderr.splitlines() == [done.stderr.strip()], done.stderr  # one line, no client noise after it
    assert done.stderr.startswith("fanout: Kafka not reachable at 127.0.0.1:1 (start it"), done.stderr


def test_a_missing_file_is_one_line() -> None:
    done = _fanout("publish", "--file", "/nonexistent/events.jsonl")
    assert done.returncode == 2, done.stderr
    assert done.stderr.splitlines() == ["fanout: [Errno 2] No such file or directory: '/nonexistent/events.jsonl'"]


def test_a_cassandra_host_that_does_not_resolve_is_one_line() -> None:
    done = _fanout("feed", "ann", env={"FANOUT_CASSANDRA_HOSTS": "nonexistent.invalid"})
    assert done.returncode == EXIT_UNAVAILABLE, done.stderr  # a DNS outage may pass
    assert done.stderr.splitlines() == [
        "fanout: no Cassandra host of FANOUT_CASSANDRA_HOSTS (nonexistent.invalid) resolves to an address: "
        "check the names (or the DNS)"
    ]


def test_a_reader_that_goes_away_ends_the_output_quietly() -> None:
    """``fanout schemas | head -1``: no BrokenPipeError traceback or exit-time error, the status of a
    pipe's writer (141, as for a process ended by SIGPIPE)."""
    reader = subprocess.Popen([sys.executable, "-m", "fanout", "schemas"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, env={"PATH": "/usr/bin:/bin"})
    assert reader.stdout is not None and reader.stderr is not None
    reader.stdout.close()  # before the command writes: its output meets a closed pipe
    status = reader.wait(timeout=60)
    errors = reader.stderr.read()
    reader.stderr.close()
    assert status == 141 and b"Traceback" not in errors and b"Exception ignored" not in errors, errors


def test_every_reason_a_dead_letter_carries_is_a_choice() -> None:
    """`--reason target` (a `to` feed of an unknown kind) was missing from the help."""
    from fanout.cli.dead import _REASONS

    done = _fanout("dead", "--reason", "target", env={"FANOUT_KAFKA_BOOTSTRAP": "127.0.0.1:1"})
    assert "invalid choice" not in done.stderr and "Kafka not reachable" in done.stderr, done.stderr
    assert set(_REASONS) == {"json", "schema", "version", "oversize", "time", "target", "conflict", "store"}


def test_an_error_without_a_message_still_says_what_it_is(monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    from fanout.cli import basic, main

    def timed_out(args: object, settings: object) -> int:
        raise TimeoutError  # an OSError whose str() is empty

    monkeypatch.setattr(basic, "_migrate", timed_out)
    assert main(["migrate"]) == EXIT_UNAVAILABLE  # a server that did not answer: try again
    assert capsys.readouterr().err.strip() == "fanout: TimeoutError()"


def test_kafka_not_answering_in_time_is_an_outage(monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    from aiokafka.errors import KafkaTimeoutError

    from fanout.cli import basic, main

    def timed_out(args: object, settings: object) -> int:
        raise KafkaTimeoutError("Failed to update metadata after 60.0 secs.")  # retriable=False to aiokafka

    monkeypatch.setattr(basic, "_migrate", timed_out)
    assert main(["migrate"]) == EXIT_UNAVAILABLE
    assert capsys.readouterr().err.startswith("fanout: Kafka did not answer in time")


async def test_a_published_line_with_an_unpaired_surrogate_says_so() -> None:
    """A ``--file`` line is decoded before the producer sees it; msgspec's "Input data was
    truncated" for a lone ``\\uD800`` near the line's end is mended to say what is wrong."""
    from fanout.cli.publish import _queue_line
    from fanout.errors import InvalidEvent

    with pytest.raises(InvalidEvent, match="unpaired surrogate") as caught:
        await _queue_line(None, rb'{"actor":"a","verb":"v","object":"o\ud800"}')
    assert caught.value.reason == "json"
