"""Prometheus metrics of the HTTP API (the process's default registry, served at ``/metrics``)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

REQUESTS = Counter(
    "fanout_http_requests_total",
    "HTTP requests answered, by route template, method and status code.",
    ["route", "method", "status"],
)
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE", "CONNECT"})


def method_label(method: str) -> str:
    """The request's method as a label value: a name of the client's choosing would add a series
    for good (any method name reaches the 405 answer), so other names count as ``other``."""
    return method if method in METHODS else "other"


SECONDS = Histogram(
    "fanout_http_request_seconds",
    "Time to answer an HTTP request, by route template.",
    ["route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
