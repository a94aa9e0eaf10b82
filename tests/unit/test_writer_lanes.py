"""Writer lanes: LOW writers fetch larger batches with a longer wait, HIGH writers keep small ones."""

from __future__ import annotations

from fanout import MemoryStore, Settings
from fanout.agents.writer import WriterAgent


def test_low_writers_take_the_low_batch_settings_and_high_writers_the_others() -> None:
    settings = Settings(batch_max_records=7, batch_max_wait_ms=11, low_batch_max_records=900, low_batch_max_wait_ms=800)
    high, low = WriterAgent(settings, MemoryStore(), "high"), WriterAgent(settings, MemoryStore(), "low")
    assert (high.max_records, high.fetch_wait_ms) == (7, 11)
    assert (low.max_records, low.fetch_wait_ms) == (900, 800)
    defaults = Settings()
    assert defaults.low_batch_max_records >= defaults.batch_max_records
    assert defaults.low_batch_max_wait_ms >= defaults.batch_max_wait_ms
