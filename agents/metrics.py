"""Prometheus metrics of the agents (``fanout worker ... --metrics-port 9100`` serves them at
``/metrics``, next to ``/healthz``: see ``fanout.agents.health``)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

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

LAST_PROGRESS = Gauge(
    "fanout_agent_last_progress_timestamp_seconds",
    "When the agent last committed offsets or had nothing to do (Unix time).",
    ["role"],
)
AGENT_STATE = Gauge(
    "fanout_agent_state",
    "1 for the agent's current state (starting, running, retrying, kafka-unreachable, stalled, stopping).",
    ["role", "state"],
)
PARTITION_RETRIES = Counter(
    "fanout_partition_retries_total",
    "Partition batches sought back to be re-delivered after a retriable failure.",
    ["role"],
)
PRODUCER_RENEWALS = Counter(
    "fanout_producer_renewals_total",
    "Producers replaced because they were in a fatal state.",
    ["role"],
)
CONSUMER_RENEWALS = Counter(
    "fanout_consumer_renewals_total",
    "Consumers replaced because they kept failing.",
    ["role"],
)
KAFKA_REACHABLE = Gauge(
    "fanout_kafka_reachable",
    "1 while the agent reaches Kafka, 0 during an outage.",
    ["role"],
)
BACKLOG_AGE = Gauge(
    "fanout_backlog_age_seconds",
    "Age of the oldest record of the last batch fetched (how far behind the agent is, in time).",
    ["role"],
)
RECORDS_EXPIRED = Counter(
    "fanout_records_expired_total",
    "Records the topic's retention deleted before the agent's group read them.",
    ["role"],
)
