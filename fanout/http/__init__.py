"""fanout's HTTP API for services in any language: ``fanout serve`` runs ``create_app`` on uvicorn.

    app      create_app: routes, problem+json for every error, metrics
    routes   the handlers;  reader: feed pages and marking readers active
    backends Cassandra and Kafka, connected on first use (503 while down)
    params   path and query parameters;  cursors: opaque page cursors
    models   the response documents;  openapi: /openapi.json;  problems: RFC 9457 errors
"""

from __future__ import annotations

from .app import create_app

__all__ = ["create_app"]
