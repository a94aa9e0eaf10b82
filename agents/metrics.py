"""Prometheus metrics of the agents (``fanout worker ... --metrics-port 9100`` serves them)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram, start_http_server

EVENTS = Counter(
    "fanout_events_processed_total",
    "Records an agent consumed, by outcome (ok, dead).",
    ["role", "outcome"],
)
DEAD_LETTERS = Counter(
    "fanout_dead_letters_total",
    "Records sent to the dead-letter topic, by reason.",
    ["role", "reason"],
)
ROWS_WRITTEN = Counter(
    "fanout_rows_written_total",
    "Timeline rows the writer agents wrote (acknowledged by the store).",
    ["priority"],
)
CHUNKS_PLANNED = Counter(
    "fanout_chunks_planned_total",
    "Chunk messages the planner produced, by priority.",
    ["priority"],
)
STORE_RETRIES = Counter(
    "fanout_store_retries_total",
    "Retries after a retriable store error.",
    ["role"],
)
COMMITS = Counter(
    "fanout_commits_total",
    "Offset commits after a fully processed batch.",
    ["role"],
)
BATCH_SECONDS = Histogram(
    "fanout_batch_seconds",
    "Time from a fetched batch to its committed offsets.",
    ["role"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)


def serve(port: int) -> None:
    """Serve /metrics on ``port`` (a daemon thread of prometheus_client)."""
    start_http_server(port)
