"""Fuzz: thousands of bad events of every kind, interleaved with valid ones, into running agents.

Every bad record must end in the dead-letter topic with a reason (or be refused by the broker at
produce time); none may vanish; no agent may exit; every valid event lands exactly as the model
says; and no accepted time breaks a read (``fanout feed`` of the affected feeds exits 0).
"""

from __future__ import annotations

import asyncio
import json
import random
import re
import time
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from . import fuzz
from .drive import crash_guard, seeded
from .kafka_io import DeadLetter, Producer, Sent, read_dead, wait_drained
from .model import Model
from .report import Summaries
from .rows import read_rows, summarize
from .scale import Scale
from .stack import Stack

pytestmark = [pytest.mark.chaos, pytest.mark.integration]

FOLLOWERS = [f"ff{i}" for i in range(20)]  # ff0..ff4 also post: HIGH; the others LOW
LATE = [f"fn{i}" for i in range(10)]


def _prologue() -> tuple[list[tuple[str, str, dict[str, Any]]], list[tuple[str, str, dict[str, Any]]]]:
    follows = [("follows", f, {"follower": f, "followee": a}) for f in FOLLOWERS for a in fuzz.AUTHORS]
    posts = [("activities", a, {"actor": a, "verb": "post", "object": "base", "id": f"{a}/base0",
                                "time": "2026-01-05T10:00:00+02:00"}) for a in fuzz.AUTHORS]
    posts += [("activities", f, {"actor": f, "verb": "hello", "object": "me"}) for f in FOLLOWERS[:5]]
    return follows, posts


def _valid(rng: random.Random, count: int) -> list[tuple[str, str, dict[str, Any]]]:
    out: list[tuple[str, str, dict[str, Any]]] = []
    for n in range(count):
        actor = rng.choice(fuzz.AUTHORS)
        doc = {"actor": actor, "verb": "post", "object": f"ok{n}", "id": f"{actor}/ok{n}",
               "time": f"2026-02-{rng.randint(1, 28):02d}T{rng.randint(0, 23):02d}:00:00Z"}
        out.append(("activities", actor, doc))
        if rng.random() < 0.1:
            out.append(("activities", actor, {**doc, "op": "remove"}))
    out += [("follows", f, {"follower": f, "followee": rng.choice(fuzz.AUTHORS)}) for f in LATE]
    return out


def _check_letter(kind: fuzz.Kind, sent: Sent, letter: DeadLetter) -> str:
    """What is wrong with the dead letter of a bad record ('' if nothing)."""
    if not letter.reason or not letter.error:
        return "no reason or error header"
    if kind.reasons and letter.reason not in kind.reasons:
        return f"reason {letter.reason!r}, expected one of {sorted(kind.reasons)}"
    if re.search(r"version 1\b.*version 1\b", letter.error):
        return f"the error contradicts itself: {letter.error[:200]}"
    size = len(sent.value or b"")
    if size > fuzz.NEAR_LIMIT and not any(str(size) in v for v in letter.headers.values()):
        return f"a truncated dead letter must give the original size ({size}): {letter.headers}"
    return ""


async def test_fuzz(make_stack: Callable[..., Awaitable[Stack]], scale: Scale, summaries: Summaries) -> None:
    seed, rng = seeded()
    stack = await make_stack(FANOUT_MAX_LENGTH="100000")
    model = Model(follow_activity_limit=5000)
    fleet = stack.fleet()
    for name, role, *args in (("planner", "planner"), ("writer-high", "writer", "--priority", "high"),
                              ("writer-low", "writer", "--priority", "low"), ("follows", "follows")):
        fleet.add(name, role, *args)
    started = time.monotonic()
    problems: list[str] = []
    bad = fuzz.plan(rng, scale.bad_events)
    valid = _valid(rng, max(100, scale.bad_events // 10))
    mixed: list[tuple[fuzz.Kind | None, str, str, bytes | None]] = [(k, k.topic, key, v) for k, key, v in bad]
    mixed += [(None, topic, key, json.dumps(doc).encode()) for topic, key, doc in valid]
    rng.shuffle(mixed)
    try:
        async with Producer(stack.prefix) as producer:
            for part in _prologue():
                for done in await producer.send_docs(part):
                    model.apply(done.topic, json.loads(done.value or b""), done.ts_us)
                await wait_drained(stack.prefix, scale.drain_seconds)
            sent: list[Sent] = []
            for i in range(0, len(mixed), 500):
                sent += await producer.send_many((t, k.encode(), v) for _, t, k, v in mixed[i : i + 500])
        try:
            await wait_drained(stack.prefix, scale.drain_seconds, alive=crash_guard(fleet))
        except AssertionError as exc:
            problems.append(str(exc))
    finally:
        await fleet.close()

    expected_dead = sum(1 for (k, *_), done in zip(mixed, sent, strict=True)
                        if k and k.fate in ("dead", "either") and not done.refused)
    letters = await read_dead(stack.prefix, at_least=expected_dead, within=30 if problems else 120)
    by_source = {letter.source: letter for letter in letters}
    tally: dict[str, Counter[str]] = defaultdict(Counter)
    fates = {k.name: k.fate for k in fuzz.kinds()} | {"valid": "valid"}
    for (kind, topic, _, _), done in zip(mixed, sent, strict=True):
        letter = by_source.pop((f"{stack.prefix}{topic}", done.partition, done.offset), None)
        name = kind.name if kind else "valid"
        fate = kind.fate if kind else "valid"
        if done.refused:
            tally[name]["refused" if fate == "refused" else "REFUSED"] += 1
        elif fate == "refused":
            tally[name]["ACCEPTED-OVER-LIMIT"] += 1
        elif letter is not None:
            wrong = _check_letter(kind, done, letter) if kind else "a valid event was dead-lettered"
            tally[name]["dead" if not wrong or fate != "dead" else "BAD-LETTER"] += 1
            if wrong and len(problems) < 30:
                problems.append(f"{name} at {topic}[{done.partition}]@{done.offset}: {wrong}")
            if fate == "valid":
                tally[name]["VALID-DEAD"] += 1
        elif fate == "dead":
            tally[name]["VANISHED"] += 1
        else:  # valid, or 'either' and accepted: it must land
            tally[name]["accepted"] += 1
            model.apply(topic, json.loads(done.value or b""), done.ts_us, loose_ts=fate == "either")
    if by_source:
        problems.append(f"{len(by_source)} dead letters name no produced record: {list(by_source)[:5]}")
    result = summarize(await read_rows(stack.keyspace), model)
    reads = await _read_feeds(stack)
    failing = {name: dict(c) for name, c in sorted(tally.items()) if any(k.isupper() for k in c)}
    dead = sum(c["dead"] for name, c in tally.items() if fates[name] == "dead")
    must = sum(sum(c.values()) for name, c in tally.items() if fates[name] == "dead")
    either = {k: sum(c[k] for name, c in tally.items() if fates[name] == "either") for k in ("dead", "accepted")}
    summaries.add(
        "fuzz", seed=seed, bad=len(bad), kinds=len({k.name for k, *_ in bad}), dead=f"{dead}/{must}",
        refused=sum(c["refused"] for c in tally.values()), either=either,
        accepted=sum(c["accepted"] for name, c in tally.items() if fates[name] == "valid" and name != "valid"),
        valid=len(valid), lost=result.lost, extra=result.extra, dup=result.dup, wrong=result.wrong,
        crashes=len(fleet.crashes), reads=f"{sum(reads.values())}/{len(reads)}", secs=time.monotonic() - started,
        logs=stack.log_dir,
    )
    assert not fleet.crashes, "agents exited on their own:\n" + "\n".join(fleet.crashes[:5])
    assert not failing, f"bad events not handled as the contract says: {failing}\n" + "\n".join(problems)
    assert not problems, "\n".join(problems)
    assert result.exact, result.report()
    assert all(reads.values()), f"reads that failed: {[k for k, ok in reads.items() if not ok]}"


async def _read_feeds(stack: Stack) -> dict[str, bool]:
    """``fanout feed`` of every feed an accepted odd time could reach: each must exit 0."""
    checks = [(a, "user") for a in fuzz.AUTHORS] + [(f, "timeline") for f in (FOLLOWERS[0], FOLLOWERS[-1])]
    out: dict[str, bool] = {}
    for user, kind in checks:
        try:
            await asyncio.to_thread(stack.fanout, "feed", user, "--kind", kind, "--limit", "5000", "--json")
            out[f"{kind}:{user}"] = True
        except AssertionError as exc:
            (stack.log_dir / f"feed-{kind}-{user}.err").write_text(str(exc))
            out[f"{kind}:{user}"] = False
    return out
