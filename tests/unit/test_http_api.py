"""The HTTP API on a real uvicorn server with a real HTTP client, over the in-memory store and a
publisher twin (no broker): paging, cursors, marking readers active, problems, 503s."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from aiokafka.errors import KafkaConnectionError

from fanout import Fanout, MemoryStore, Settings, StoreError
from fanout.activity import derive_id, to_micros
from fanout.codec import json_schemas
from fanout.http import create_app
from fanout.http.cursors import feed_cursor, user_cursor
from tests.http_helpers import PublisherTwin, assert_problem, served, walk

# no broker in unit tests: readiness asks a port where nothing listens
SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1", http_backend_timeout_seconds=2.0)


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.set_active_calls = 0
        self.fail: StoreError | None = None

    async def set_active(self, user: str, active_until: int, at: int) -> None:
        self.set_active_calls += 1
        await super().set_active(user, active_until, at)

    async def read(self, feed: str, **options: Any) -> Any:
        if self.fail is not None:
            raise self.fail
        return await super().read(feed, **options)


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, CountingStore, PublisherTwin]]:
    store, publisher = CountingStore(), PublisherTwin()
    async with served(create_app(SETTINGS, store=store, publisher=publisher)) as client:
        yield client, store, publisher


@pytest.fixture(scope="module")
async def shared_api() -> AsyncIterator[tuple[httpx.AsyncClient, PublisherTwin]]:
    """One server for the tests that only send bad requests (nothing may be produced)."""
    publisher = PublisherTwin()
    async with served(create_app(SETTINGS, store=MemoryStore(), publisher=publisher)) as client:
        yield client, publisher


async def _items(client: httpx.AsyncClient, path: str, limit: int) -> list[Any]:
    return [item for page in await walk(client, path, limit) for item in page["items"]]


async def test_pages_walked_with_next_equal_the_feed(api: Any) -> None:
    client, store, _ = api
    fanout = Fanout(store, SETTINGS)
    await fanout.follow("7", "42")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    for n in range(23):
        extra = {"n": n} if n % 3 == 0 else None
        await fanout.add(actor="42", verb="pin", object=f"pin:{n}", target="board:3" if n % 2 else None,
                         time=t0.replace(minute=n % 5), extra=extra)  # ties in time: ordered by id
    expected = await store.read("timeline:7", limit=100)
    assert len(expected) == 23
    for limit in (1, 5, 23, 100):
        items = await _items(client, "/v1/feeds/timeline/7", limit)
        assert [i["id"] for i in items] == [a.id for a in expected]
    first = (await client.get("/v1/feeds/timeline/7", params={"limit": 1})).json()["items"][0]
    newest = expected[0]
    assert first["actor"] == "42" and first["verb"] == "pin" and first["object"] == newest.object
    assert datetime.fromisoformat(first["time"]) == newest.time
    assert first.get("target") == newest.target and first.get("extra") == newest.extra
    assert set(first) <= {"id", "actor", "verb", "object", "target", "time", "extra"}
    user_items = await _items(client, "/v1/feeds/user/42", 10)
    assert [i["id"] for i in user_items] == [a.id for a in await store.read("user:42", limit=100)]
    empty = (await client.get("/v1/feeds/timeline/nobody")).json()
    assert empty == {"items": [], "next": None}


async def test_a_cursor_stays_stable_while_writes_arrive(api: Any) -> None:
    client, store, _ = api
    fanout = Fanout(store, SETTINGS)
    await fanout.follow("r", "a")
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    posted = [await fanout.add(actor="a", verb="v", object=f"o{n}", time=t0.replace(second=n)) for n in range(10)]
    page = (await client.get("/v1/feeds/timeline/r", params={"limit": 4})).json()
    seen = [i["id"] for i in page["items"]]
    # newer posts arrive and an entry already served is removed: the walk goes on where it was
    for n in range(3):
        await fanout.add(actor="a", verb="v", object=f"new{n}", time=t0.replace(minute=5, second=n))
    await fanout.remove(posted[9].id, actor="a")
    cursor = page["next"]
    while cursor:
        page = (await client.get("/v1/feeds/timeline/r", params={"limit": 4, "cursor": cursor})).json()
        seen.extend(i["id"] for i in page["items"])
        cursor = page["next"]
    assert seen == [a.id for a in reversed(posted)]


async def test_reading_a_timeline_marks_the_reader_active_once(api: Any) -> None:
    client, store, _ = api
    assert await store.last_active("reader") == 0
    for _ in range(5):
        assert (await client.get("/v1/feeds/timeline/reader")).status_code == 200
    assert await store.last_active("reader") > 0
    assert store.set_active_calls == 1  # one write, not one per read
    assert (await client.get("/v1/feeds/user/profile-owner")).status_code == 200
    assert await store.last_active("profile-owner") == 0  # a profile view is not its owner reading


async def test_followers_and_following_page_with_counts(api: Any) -> None:
    client, store, _ = api
    fanout = Fanout(store, SETTINGS)
    fans = [f"fan/{i:02d}" for i in range(13)]  # ids may hold a slash
    for fan in fans:
        await fanout.follow(fan, "star")
        await fanout.follow(fan, "other")
    await fanout.unfollow(fans[5], "star")
    await fanout.follow("star", "other")

    async def listed(path: str, limit: int) -> tuple[list[str], set[int | None]]:
        pages = await walk(client, path, limit)
        return [i for page in pages for i in page["items"]], {page["count"] for page in pages}

    live = [f for f in fans if f != fans[5]]
    assert await listed("/v1/users/star/followers", 4) == (live, {12})
    assert await listed("/v1/users/other/followers", 100) == ([*fans, "star"], {14})
    assert await listed("/v1/users/fan/03/following", 1) == (["other", "star"], {2})
    assert await listed("/v1/users/fan/05/following", 5) == (["other"], {1})
    assert await listed("/v1/users/nobody/following", 5) == ([], {0})


async def test_post_activity_answers_the_id_it_will_have(api: Any) -> None:
    client, _, publisher = api
    given = await client.post("/v1/activities", json={"actor": "42", "verb": "pin", "object": "o", "id": "my-id"})
    assert given.status_code == 202, given.text
    assert given.json() == {"id": "my-id", "topic": "fanout.activities", "partition": 0, "offset": 0}
    when = "2024-05-01T10:00:00.123456+00:00"
    timed = await client.post("/v1/activities", json={"actor": "42", "verb": "pin", "object": "o", "time": when})
    derived = derive_id("42", "pin", "o", None, to_micros(datetime.fromisoformat(when)))
    assert timed.status_code == 202 and timed.json()["id"] == derived
    bare = await client.post("/v1/activities", json={"actor": "42", "verb": "pin", "object": "p", "target": "b"})
    event = publisher.activities[-1]
    assert event.time is not None  # the accepted time is fixed at the edge, so the id is known now
    assert bare.json()["id"] == derive_id("42", "pin", "p", "b", to_micros(event.time))
    removed = await client.delete("/v1/activities/my-id", params={"actor": "42"})
    assert removed.status_code == 202 and removed.json()["id"] == "my-id"
    assert publisher.activities[-1].op == "remove" and publisher.activities[-1].id == "my-id"
    follow = await client.post("/v1/follows", json={"follower": "7", "followee": "42"})
    assert follow.status_code == 202 and follow.json() == {"topic": "fanout.follows", "partition": 0, "offset": 0}
    unfollow = await client.post("/v1/follows", json={"follower": "7", "followee": "42", "op": "unfollow"})
    assert unfollow.status_code == 202 and publisher.follows[-1].op == "unfollow"


BAD_READS = [
    ("/v1/feeds/timeline/u?limit=0", 400, "limit"),
    ("/v1/feeds/timeline/u?limit=101", 400, "limit"),
    ("/v1/feeds/timeline/u?limit=abc", 400, "limit"),
    ("/v1/feeds/timeline/u?limit=-1", 400, "limit"),
    ("/v1/feeds/timeline/u?limit=%EF%BC%91", 400, "limit"),  # a full-width digit
    ("/v1/feeds/timeline/u?limit=1&limit=2", 400, "limit"),
    ("/v1/feeds/timeline/u?limt=2", 400, "limt"),
    ("/v1/feeds/timeline/u?cursor=", 400, "cursor"),
    ("/v1/feeds/timeline/u?cursor=not-a-cursor", 400, "cursor"),
    ("/v1/feeds/timeline/u?cursor=%2B%2F%3D", 400, "cursor"),
    ("/v1/feeds/timeline/u?cursor=" + "A" * 500, 400, "cursor"),
    ("/v1/feeds/timeline/u?cursor=" + user_cursor("someone"), 400, "cursor"),  # a cursor of another list
    ("/v1/feeds/nosuchkind/u", 404, "kind"),
    ("/v1/feeds/timeline/" + "x" * 257, 400, "user"),
    ("/healthz?x=1", 400, "x"),
    ("/v1/users/u/followers?cursor=" + feed_cursor((1, "x")), 400, "cursor"),
    ("/v1/users/u/following?limit=0", 400, "limit"),
    ("/v1/users/u/following?after=x", 400, "after"),
    ("/v1/users/" + "x" * 257 + "/followers", 400, "user"),
]


@pytest.mark.parametrize(("path", "status", "field"), BAD_READS)
async def test_bad_reads_are_problems_naming_the_parameter(
    shared_api: Any, path: str, status: int, field: str
) -> None:
    client, _ = shared_api
    assert_problem(await client.get(path), status, field)


BAD_BODIES: list[tuple[str, str, bytes, int, str]] = [
    ("POST", "/v1/activities", b"{", 400, "body"),
    ("POST", "/v1/activities", b"", 400, "body"),
    ("POST", "/v1/activities", b"[1]", 422, "body"),
    ("POST", "/v1/activities", b'{"actor": "a", "verb": "v"}', 422, "object"),
    ("POST", "/v1/activities", b'{"actor": "", "verb": "v", "object": "o"}', 422, "actor"),
    ("POST", "/v1/activities", b'{"actor": 5, "verb": "v", "object": "o"}', 422, "actor"),
    ("POST", "/v1/activities", b'{"actor": "a", "verb": "v", "object": "o", "time": "yesterday"}', 422, "time"),
    ("POST", "/v1/activities", b'{"actor": "a", "verb": "v", "object": "o", "v": 2}', 422, "v"),
    ("POST", "/v1/activities", b'{"actor": "a", "verb": "v", "object": "o", "op": "remove"}', 422, "id"),
    ("POST", "/v1/activities", b'{"actor": "a", "verb": "v", "object": "o", "extra": {"x": "'
     + b"y" * 17_000 + b'"}}', 422, "extra"),
    ("POST", "/v1/activities", b'{"actor": "a", "verb": "v", "object": "o", "extra": "' + b"y" * 70_000 + b'"}',
     413, "body"),
    ("POST", "/v1/activities", b"{\"actor\": \"" + "é".encode() * 200 + b'", "verb": "v", "object": "o"}',
     422, "actor"),
    ("POST", "/v1/activities", b'{"actor": "a", "verb": "v", "object": "o", "time": "2000-01-01T00:00:00Z"}',
     422, "time"),  # older than FANOUT_MAX_PAST_DAYS: found by the schemathesis run
    ("POST", "/v1/follows", b'{"follower": "a", "followee": "b", "time": "2999-01-01T00:00:00Z"}', 422, "time"),
    ("POST", "/v1/follows", b'{"follower": "a", "followee": "a"}', 422, "follower"),
    ("POST", "/v1/follows", b'{"follower": "a", "followee": "b", "op": "block"}', 422, "op"),
    ("POST", "/v1/follows", b"null", 422, "body"),
    ("DELETE", "/v1/activities/x", b"", 400, "actor"),
    ("DELETE", "/v1/activities/x?actor=", b"", 400, "actor"),
    ("DELETE", "/v1/activities/" + "x" * 300 + "?actor=a", b"", 400, "id"),
]


@pytest.mark.parametrize(("method", "path", "body", "status", "field"), BAD_BODIES)
async def test_bad_writes_are_problems_naming_the_field(
    shared_api: Any, method: str, path: str, body: bytes, status: int, field: str
) -> None:
    client, publisher = shared_api
    response = await client.request(method, path, content=body, headers={"content-type": "application/json"})
    assert_problem(response, status, field)
    assert publisher.activities == [] and publisher.follows == []  # nothing produced


async def test_unknown_routes_and_methods_are_problems(shared_api: Any) -> None:
    client, publisher = shared_api
    assert_problem(await client.get("/v2/feeds/timeline/u"), 404)
    assert_problem(await client.get("/v1/activities"), 405)
    assert_problem(await client.put("/v1/follows", content=b"{}"), 405)
    for path, allow in [("/v1/activities/a/delivery", "GET"), (f"/v1/activities/{'x' * 300}/delivery", "GET"),
                        (f"/v1/notifications/{'x' * 300}/seen", "POST")]:
        method = client.delete if allow == "GET" else client.get
        response = await method(path)  # the other route's path, whatever the id: 405, not a 400 on the id
        assert_problem(response, 405)
        assert response.headers["allow"] == allow
    assert publisher.activities == []


async def test_a_path_one_slash_short_is_a_problem_not_a_redirect(shared_api: Any) -> None:
    """Starlette redirected `/v1/feeds/timeline` to `http://<the Host header>/v1/feeds/timeline/`."""
    client, _ = shared_api
    response = await client.get("/v1/feeds/timeline", headers={"host": "evil.example"})
    assert_problem(response, 404)
    assert "location" not in response.headers


async def test_method_names_of_the_clients_choosing_add_no_metric_series(shared_api: Any) -> None:
    client, _ = shared_api
    for n in range(20):
        assert_problem(await client.request(f"M{n}", "/v1/follows"), 405)
    text = (await client.get("/metrics")).text
    assert 'method="M1"' not in text and 'method="other"' in text


async def test_a_store_that_fails_answers_503(api: Any) -> None:
    client, store, _ = api
    store.fail = StoreError("Cassandra read failed: NoHostAvailable", retriable=True)
    response = await client.get("/v1/feeds/timeline/u")
    assert_problem(response, 503)
    assert response.headers["retry-after"]
    assert "Cassandra" in response.json()["title"]


async def test_a_broker_that_is_down_or_silent_answers_503() -> None:
    event = {"actor": "a", "verb": "v", "object": "o", "id": "x"}
    down = PublisherTwin(fail=KafkaConnectionError("Unable to bootstrap"))
    async with served(create_app(SETTINGS, store=MemoryStore(), publisher=down)) as client:
        response = await client.post("/v1/activities", json=event)
        assert_problem(response, 503)
        assert "Kafka" in response.json()["title"]
        assert_problem(await client.post("/v1/follows", json={"follower": "a", "followee": "b"}), 503)
    silent = PublisherTwin(hang=True)
    quick = SETTINGS.replace(http_backend_timeout_seconds=0.3)
    async with served(create_app(quick, store=MemoryStore(), publisher=silent)) as client:
        started = asyncio.get_running_loop().time()
        response = await client.post("/v1/activities", json=event)
        assert_problem(response, 503)
        assert "retry with the same `id`" in response.json()["detail"]
        assert asyncio.get_running_loop().time() - started < 3


async def test_a_slow_connection_is_awaited_not_restarted() -> None:
    slow = PublisherTwin(start_seconds=1.0)
    quick = SETTINGS.replace(http_backend_timeout_seconds=0.3)
    event = {"actor": "a", "verb": "v", "object": "o", "id": "x"}
    async with served(create_app(quick, store=MemoryStore(), publisher=slow)) as client:
        waiting = await client.post("/v1/activities", json=event)
        assert "still connecting" in assert_problem(waiting, 503)["detail"]
        await asyncio.sleep(1.0)
        assert (await client.post("/v1/activities", json=event)).status_code == 202
    assert slow.starts == 1 and slow.stopped


async def test_health_readiness_and_metrics(api: Any) -> None:
    client, _, _ = api
    health = await client.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    ready = await client.get("/readyz")  # the store answers, the broker (nothing on port 1) does not
    assert ready.status_code == 503
    checks = ready.json()["checks"]
    assert checks["cassandra"] == "ok" and "Kafka" in checks["kafka"]
    metrics = await client.get("/metrics")
    assert metrics.status_code == 200
    assert 'fanout_http_requests_total{method="GET",route="/healthz",status="200"}' in metrics.text


async def test_the_openapi_document_describes_every_route(api: Any) -> None:
    client, _, _ = api
    doc = (await client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    assert {"/v1/feeds/{kind}/{user}", "/v1/activities", "/v1/activities/{id}", "/v1/follows", "/healthz",
            "/readyz"} <= set(doc["paths"])
    schemas = doc["components"]["schemas"]
    refs = _refs(doc)
    assert refs and all(ref.removeprefix("#/components/schemas/") in schemas for ref in refs)
    contract = json_schemas()["activity.v1.json"]  # the request body is the wire contract's schema
    assert schemas["ActivityEvent"] == contract["$defs"]["ActivityEvent"]


def _refs(node: Any) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if "$ref" in node else set()
        return found.union(*(_refs(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node))
    return set()


async def test_delivery_reports_the_fanout_of_an_activity_and_its_removal(api: Any) -> None:
    client, store, _ = api
    fanout = Fanout(store, SETTINGS.replace(chunk_size=2))
    for fan in ("1", "2", "3"):
        await fanout.follow(fan, "42")
    pinned = await fanout.add(actor="42", verb="pin", object="pin:1")
    doc = (await client.get(f"/v1/activities/{pinned.id}/delivery")).json()
    assert doc["id"] == pinned.id and doc["remove"] is None
    assert doc["add"]["complete"] is True
    assert doc["add"]["priorities"]["low"] == {"chunks_planned": 2, "feeds_planned": 3, "chunks_written": 2,
                                               "feeds_written": 3}
    assert datetime.fromisoformat(doc["add"]["first_landed"]) <= datetime.fromisoformat(doc["add"]["last_landed"])
    await fanout.remove(pinned.id, actor="42")
    doc = (await client.get(f"/v1/activities/{pinned.id}/delivery")).json()
    assert doc["remove"]["complete"] is True and doc["remove"]["priorities"]["low"]["feeds_written"] == 3
    unknown = (await client.get("/v1/activities/nope/delivery")).json()
    assert unknown == {"id": "nope", "add": None, "remove": None}
    assert_problem(await client.get("/v1/activities/nope/delivery", params={"x": "1"}), 400, "x")


async def test_bytes_that_are_not_utf8_in_a_path_id_are_refused_not_read_as_u_fffd(shared_api: Any) -> None:
    """`%FF` and `%C0` both read as the id U+FFFD: two ids, one user (marks too)."""
    client, _ = shared_api
    for path in ("/v1/users/%FF/following", "/v1/users/a%C0b/followers", "/v1/feeds/timeline/%FF",
                 "/v1/activities/%FF/delivery"):
        assert_problem(await client.get(path), 400)
    assert_problem(await client.post("/v1/notifications/%FF/seen"), 400)
    assert (await client.get("/v1/users/%EF%BF%BD/following")).status_code == 200  # U+FFFD itself, as UTF-8


async def test_readyz_unavailable_says_when_to_ask_again(shared_api: Any) -> None:
    client, _ = shared_api
    ready = await client.get("/readyz")  # no broker in unit tests
    assert ready.status_code == 503 and ready.headers["retry-after"] == "5"
