"""The HTTP API against the real broker and node: events produced by a bare Kafka client and
through the API itself, fanned out by the agents, read back over HTTP page by page; a Cassandra
that goes away and comes back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any

import httpx
import pytest

from fanout.activity import to_micros
from fanout.http import create_app
from fanout.settings import Settings
from tests.http_helpers import TcpProxy, assert_problem, served, walk
from tests.integration.pipeline_helpers import all_agents, pipeline, pipeline_settings, produce_raw, wait_drained
from tests.integration.scenario import ACTORS, FOLLOWERS, Script, eager, mark_active, records

pytestmark = pytest.mark.integration

Phase = list[tuple[str, str, dict[str, Any]]]


async def entries(client: httpx.AsyncClient, path: str, limit: int) -> list[tuple[Any, ...]]:
    """Every entry of a feed, page by page along ``next``: (ts, id, actor, verb, object, target, extra)."""
    return [(to_micros(datetime.fromisoformat(i["time"])), i["id"], i["actor"], i["verb"], i["object"],
             i.get("target"), i.get("extra")) for page in await walk(client, path, limit) for i in page["items"]]


@pytest.fixture
async def agents_running() -> AsyncIterator[tuple[Settings, Any]]:
    settings = pipeline_settings()
    async with pipeline(settings) as store:
        await mark_active(store, settings)
        async with all_agents(settings, store, ready=True):
            yield settings, store


def _through_the_api(phase: Phase) -> list[tuple[str, str, dict[str, Any] | None]]:
    """The requests that produce ``phase`` (every remove by id: DELETE; others: POST)."""
    out: list[tuple[str, str, dict[str, Any] | None]] = []
    for topic, _key, event in phase:
        if topic == "follows":
            out.append(("POST", "/v1/follows", event))
        elif event.get("op") == "remove" and "id" in event and set(event) <= {"actor", "verb", "object", "id",
                                                                                "op", "time"}:
            out.append(("DELETE", f"/v1/activities/{event['id']}?actor={event['actor']}", None))
        else:
            out.append(("POST", "/v1/activities", event))
    return out


async def test_feeds_read_over_http_equal_the_eager_mode(agents_running: tuple[Settings, Any]) -> None:
    settings, _store = agents_running
    script = Script(seed=11)
    phases = [script.phase1(), script.phase2(), script.phase3()]
    expected = await eager(settings, phases)
    async with served(create_app(settings)) as client:
        assert (await client.get("/readyz")).json() == {"status": "ok", "checks": {"cassandra": "ok", "kafka": "ok"}}
        for i, phase in enumerate(phases):
            if i == 1:  # the middle phase through the HTTP API, the others by a bare Kafka producer
                for method, path, body in _through_the_api(phase):
                    response = await client.request(method, path, json=body)
                    assert response.status_code == 202, response.text
                    assert response.json()["partition"] >= 0 and response.json()["offset"] >= 0
            else:
                await produce_raw(settings, "follows", records(phase, "follows"))
                await produce_raw(settings, "activities", records(phase, "activities"))
            await wait_drained(settings, within=90)
        feeds = [("timeline", u) for u in FOLLOWERS + ACTORS] + [("user", a) for a in ACTORS]
        total = 0
        for n, (kind, user) in enumerate(feeds):
            want = [(a.ts, a.id, a.actor, a.verb, a.object, a.target, a.extra)
                    for a in await expected.read(f"{kind}:{user}", limit=100_000)]
            got = await entries(client, f"/v1/feeds/{kind}/{user}", limit=(3, 10, 50, 100)[n % 4])
            assert got == want, f"{kind}:{user}"
            total += len(got)
        assert total > 1000  # a real workload, not empty feeds


async def test_a_cassandra_that_goes_away_answers_503_until_it_is_back() -> None:
    settings = pipeline_settings(http_backend_timeout_seconds=2.0)
    async with pipeline(settings) as store:
        await store.set_follow("r", "a", True, 1)
        proxy = TcpProxy("127.0.0.1", settings.cassandra_port)
        await proxy.start()
        via_proxy = settings.replace(cassandra_port=proxy.port)
        try:
            async with served(create_app(via_proxy)) as client:
                assert (await client.get("/v1/feeds/timeline/r")).status_code == 200
                await proxy.stop()  # the node is gone: connections cut, new ones refused
                for _ in range(2):
                    response = await client.get("/v1/feeds/timeline/r")
                    assert_problem(response, 503)
                    assert response.headers["retry-after"]
                ready = await client.get("/readyz")
                assert ready.status_code == 503 and ready.json()["checks"]["cassandra"] != "ok"
                assert (await client.get("/healthz")).status_code == 200
                await proxy.start()  # back: the driver reconnects on its own
                for _ in range(60):
                    if (await client.get("/v1/feeds/timeline/r")).status_code == 200:
                        break
                    await asyncio.sleep(0.5)
                else:
                    raise AssertionError("the API did not recover after Cassandra came back")
        finally:
            await proxy.stop()


async def test_producing_needs_the_topics_and_says_so() -> None:
    settings = pipeline_settings()  # no `fanout topics create` for this prefix
    async with served(create_app(settings.replace(http_backend_timeout_seconds=3.0))) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert "fanout topics create" in ready.json()["checks"]["kafka"], ready.json()
