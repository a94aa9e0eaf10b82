"""The Kafka pipeline computes the same feeds as the eager mode (issue #4), on the one-node stack.

The scenario (a social network in three phases, produced by a bare Kafka client) is in
``scenario.py``; ``tests/cluster/`` plays it on the three-node cluster.
"""

from __future__ import annotations

import pytest

from tests.integration.pipeline_helpers import pipeline_settings
from tests.integration.scenario import feeds_equal_eager_mode

pytestmark = pytest.mark.integration


async def test_pipeline_feeds_equal_eager_mode() -> None:
    await feeds_equal_eager_mode(pipeline_settings())
