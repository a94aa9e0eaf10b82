"""Hybrid fanout end to end: events produced by a bare Kafka client, the agents fanning out with a
pull threshold that one actor passes, every feed read over HTTP walking ``next``: the pages equal
the eager mode's feeds (hybrid off), and the pulled actor's posts were not written to timelines."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from fanout.feeds import feed_id
from fanout.http import create_app
from tests.http_helpers import served
from tests.integration.pipeline_helpers import all_agents, pipeline, pipeline_settings, produce_raw, wait_drained
from tests.integration.scenario import ACTORS, FOLLOWERS, Script, eager, mark_active, records
from tests.integration.test_http import entries

pytestmark = pytest.mark.integration


async def test_feeds_over_http_with_one_pulled_account_equal_the_eager_mode() -> None:
    script = Script(seed=11)
    phases = [script.phase1(), script.phase2(), script.phase3()]
    counts = Counter(followee for _, followee in script.edges if followee in ACTORS)
    (big, most), (_, second) = counts.most_common(2)
    assert most > second + 2, counts  # one actor clearly over the threshold, the others under it
    settings = pipeline_settings(pull_threshold=second + 1)
    expected = await eager(settings.replace(pull_threshold=0), phases)
    async with pipeline(settings) as store:
        await mark_active(store, settings)
        async with all_agents(settings, store, ready=True):
            for phase in phases:
                await produce_raw(settings, "follows", records(phase, "follows"))
                await produce_raw(settings, "activities", records(phase, "activities"))
                await wait_drained(settings, within=90)

        assert set(await store.pulled_accounts()) == {big}
        posts = {a.id for a in await store.read(feed_id("user", big), limit=10_000)}
        rows, eager_rows = 0, 0
        for u in FOLLOWERS:  # timeline rows of the pulled actor's posts, written vs. in the eager mode
            rows += sum(a.id in posts for a in await store.read(feed_id("timeline", u), limit=10_000))
            eager_rows += sum(a.id in posts for a in await expected.read(feed_id("timeline", u), limit=10_000))
        assert rows < eager_rows // 2, (rows, eager_rows)  # (follow copies and posts before the crossing are pushed)

        async with served(create_app(settings)) as client:
            feeds = [("timeline", u) for u in FOLLOWERS + ACTORS] + [("user", a) for a in ACTORS]
            total = 0
            for n, (kind, user) in enumerate(feeds):
                want: list[tuple[Any, ...]] = [(a.ts, a.id, a.actor, a.verb, a.object, a.target, a.extra)
                                               for a in await expected.read(f"{kind}:{user}", limit=100_000)]
                got = await entries(client, f"/v1/feeds/{kind}/{user}", limit=(3, 10, 50, 100)[n % 4])
                assert got == want, f"{kind}:{user}"
                total += len(got)
            assert total > 1000
