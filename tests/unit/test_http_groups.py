"""Aggregated and notification feeds over HTTP (issue 15), on a real server over the memory store:
the documents, paging by group, marking seen/read, and bad bodies and cursors."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from fanout import Fanout, MemoryStore, Settings
from fanout.http import create_app
from fanout.http.cursors import feed_cursor
from tests.http_helpers import PublisherTwin, assert_problem, served

SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1", http_backend_timeout_seconds=2.0)
NOON = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0) - timedelta(days=1)
GROUP_FIELDS = {"id", "verb", "activity_count", "actor_count", "first_time", "last_time", "activities"}


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, Fanout]]:
    store = MemoryStore()
    feeds = Fanout(store, SETTINGS)
    for minute, (actor, post) in enumerate([("a", "p1"), ("b", "p1"), ("c", "p2"), ("a", "p3")]):
        when = (NOON + timedelta(minutes=minute)).isoformat()
        await feeds.add(actor=actor, verb="like", object=post, time=when, to=["notification:7", "aggregated:7"])
    async with served(create_app(SETTINGS, store=store, publisher=PublisherTwin())) as client:
        yield client, feeds


async def test_notifications_page_by_group_with_counts(api: tuple[httpx.AsyncClient, Fanout]) -> None:
    client, _ = api
    doc = (await client.get("/v1/notifications/7")).json()
    assert set(doc) == {"groups", "unseen", "unread", "next"} and doc["next"] is None
    assert (doc["unseen"], doc["unread"]) == (3, 3)
    assert [set(g) for g in doc["groups"]] == [GROUP_FIELDS | {"seen", "read"}] * 3
    assert [(g["activity_count"], g["actor_count"], g["seen"]) for g in doc["groups"]] == [
        (1, 1, False), (1, 1, False), (2, 2, False)]
    assert [a["actor"] for a in doc["groups"][2]["activities"]] == ["b", "a"]  # newest first
    walked, cursor = [], None
    for _ in range(3):
        page = (await client.get("/v1/notifications/7", params={"limit": 2, **({"cursor": cursor} if cursor else {})})
                ).json()
        walked += [g["id"] for g in page["groups"]]
        cursor = page["next"]
        if cursor is None:
            break
    assert walked == [g["id"] for g in doc["groups"]] and cursor is None


async def test_mark_seen_and_read_by_id_or_all(api: tuple[httpx.AsyncClient, Fanout]) -> None:
    client, feeds = api
    ids = [g["id"] for g in (await client.get("/v1/notifications/7")).json()["groups"]]
    seen = await client.post("/v1/notifications/7/seen", json={"groups": ids[:2]})
    assert (seen.status_code, seen.json()) == (200, {"unseen": 1, "unread": 3})
    read = await client.post("/v1/notifications/7/read", json={"all": True})
    assert read.json() == {"unseen": 0, "unread": 0}
    later = (NOON + timedelta(minutes=10)).isoformat()
    await feeds.add(actor="d", verb="like", object="p1", time=later, to=["notification:7"])  # a newer like
    doc = (await client.get("/v1/notifications/7")).json()
    assert (doc["unseen"], doc["unread"], doc["groups"][0]["activity_count"]) == (1, 1, 3)


async def test_a_mark_up_to_what_was_shown_leaves_a_group_that_grew_since_unseen(
        api: tuple[httpx.AsyncClient, Fanout]) -> None:
    """The client read the page, a like landed in a group shown, then the mark came: with ``up_to``
    (the newest ``last_time`` shown) that group stays unseen; other groups are marked."""
    client, feeds = api
    shown = (await client.get("/v1/notifications/7")).json()["groups"]
    newest = shown[0]["last_time"]
    later = (NOON + timedelta(minutes=10)).isoformat()
    await feeds.add(actor="d", verb="like", object="p1", time=later, to=["notification:7"])  # after the read
    marked = await client.post("/v1/notifications/7/seen", json={"groups": [g["id"] for g in shown], "up_to": newest})
    assert marked.json() == {"unseen": 1, "unread": 3}
    doc = (await client.get("/v1/notifications/7")).json()
    assert [(g["activity_count"], g["seen"]) for g in doc["groups"]] == [(3, False), (1, True), (1, True)]
    everything = await client.post("/v1/notifications/7/read", json={"all": True, "up_to": newest})
    assert everything.json() == {"unseen": 1, "unread": 1}  # all but the group that grew since
    assert (await client.post("/v1/notifications/7/read", json={"all": True})).json() == {"unseen": 0, "unread": 0}
    naive = datetime.now().replace(tzinfo=None).isoformat()
    assert_problem(await client.post("/v1/notifications/7/seen", json={"all": True, "up_to": naive}), 422, "up_to")
    assert_problem(await client.post("/v1/notifications/7/seen", json={"all": True, "up_to": "soon"}), 422)
    assert_problem(await client.post("/v1/notifications/7/seen", json={"all": True,
                                                                       "up_to": "1969-12-31T23:59:59Z"}), 422, "up_to")
    schema = (await client.get("/openapi.json")).json()["components"]["schemas"]["MarkRequest"]["properties"]
    assert [(t.get("type"), t.get("format")) for t in schema["up_to"]["anyOf"]] == [("string", "date-time"),
                                                                                     ("null", None)]


async def test_the_aggregated_feed_pages_groups_without_state(api: tuple[httpx.AsyncClient, Fanout]) -> None:
    client, _ = api
    doc = (await client.get("/v1/feeds/aggregated/7", params={"limit": 1})).json()
    assert set(doc) == {"groups", "next"} and [set(g) for g in doc["groups"]] == [GROUP_FIELDS]
    assert doc["groups"][0]["activity_count"] == 4  # verb and day: one group
    assert doc["next"] is None
    flat = (await client.get("/v1/feeds/timeline/7")).json()
    assert set(flat) == {"items", "next"}


async def test_bad_bodies_and_cursors_are_problems(api: tuple[httpx.AsyncClient, Fanout]) -> None:
    client, _ = api
    for body in ({}, {"all": False}, {"all": True, "groups": ["x"]}):
        assert_problem(await client.post("/v1/notifications/7/seen", json=body), 422, "groups")
    assert_problem(await client.post("/v1/notifications/7/read", json={"groups": "x"}), 422, "groups")
    assert_problem(await client.post("/v1/notifications/7/read", json={"all": True, "more": 1}), 422)
    assert_problem(await client.post("/v1/notifications/7/read", content=b"{"), 400, "body")
    lone = assert_problem(await client.post("/v1/notifications/7/read", content=rb'{"groups":["\ud800"]}'), 400, "body")
    assert "surrogate" in lone["detail"] and "truncated" not in lone["detail"], lone
    flat = feed_cursor((1, "x"))
    assert_problem(await client.get("/v1/notifications/7", params={"cursor": flat}), 400, "cursor")
    assert_problem(await client.get("/v1/feeds/aggregated/7", params={"cursor": flat}), 400, "cursor")
    paths = (await client.get("/openapi.json")).json()["paths"]
    assert {"/v1/notifications/{user}", "/v1/notifications/{user}/seen", "/v1/notifications/{user}/read"} <= set(paths)


async def test_a_wrong_method_on_a_mark_names_post(api: tuple[httpx.AsyncClient, Fanout]) -> None:
    client, _ = api
    for method, path in (("OPTIONS", "/v1/notifications/7/read"), ("GET", "/v1/notifications/7/seen")):
        response = await client.request(method, path)
        assert_problem(response, 405)
        assert response.headers["allow"] == "POST"
