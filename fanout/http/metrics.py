"""Prometheus metrics of the HTTP API (the process's default registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "fanout_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
SECONDS = Histogram(
    "fanout_http_request_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
