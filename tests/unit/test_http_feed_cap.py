"""A feed read over HTTP ends at its newest ``max_length`` entries. Trims run every ``trim_every``
inserts, so a feed holds up to that many more rows between trims, and they are not the next-newest:
a row that arrived after a trim, older than every kept one, sits past the kept ones where the trim
deleted others (a gap). Paging shows the feed the bound promises, not those rows. Real server,
real client, the in-memory store."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from fanout import Fanout, MemoryStore, Settings
from fanout.http import create_app
from fanout.http.cursors import feed_cursor
from tests.http_helpers import PublisherTwin, served, walk

SETTINGS = Settings(kafka_bootstrap="127.0.0.1:1", http_backend_timeout_seconds=2.0, max_length=5, trim_every=50)
T = 1_700_000_000_000_000


@pytest.fixture
async def api() -> AsyncIterator[tuple[httpx.AsyncClient, Fanout]]:
    store = MemoryStore()
    async with Fanout(store, SETTINGS) as fanout, served(create_app(SETTINGS, store=store,
                                                                     publisher=PublisherTwin())) as client:
        await fanout.follow("fan", "ann", at=T)
        for n in range(12):  # no trim yet (5 + 50 rows allowed): every row is still there
            await fanout.add(actor="ann", verb="pin", object=f"o{n}", id=f"p{n:02}", time=_time(n))
        yield client, fanout


def _time(n: int) -> str:
    return f"2023-11-14T22:13:{20 + n:02}Z"


@pytest.mark.parametrize("limit", [1, 2, 3, 5, 100])
async def test_paging_ends_at_the_newest_max_length(api: tuple[httpx.AsyncClient, Fanout], limit: int) -> None:
    client, fanout = api
    assert len(await fanout.store.read("timeline:fan", limit=100)) == 12  # the rows between trims
    for path in ("/v1/feeds/timeline/fan", "/v1/feeds/user/ann"):
        pages = await walk(client, path, limit)
        ids = [item["id"] for page in pages for item in page["items"]]
        assert ids == [f"p{n:02}" for n in range(11, 6, -1)], (path, limit, ids)
        assert pages[-1]["next"] is None


async def test_a_cursor_of_an_earlier_build_still_pages(api: tuple[httpx.AsyncClient, Fanout]) -> None:
    """A client walking a feed across an upgrade keeps its cursor (it knows no position: no cap)."""
    client, fanout = api
    newest = (await fanout.store.read("timeline:fan", limit=1))[0]
    page = (await client.get("/v1/feeds/timeline/fan", params={"cursor": feed_cursor(newest.key), "limit": 2})).json()
    assert [item["id"] for item in page["items"]] == ["p10", "p09"] and page["next"]
