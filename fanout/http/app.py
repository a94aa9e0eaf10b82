"""The ASGI application of ``fanout serve``: ``create_app(settings)`` (run it with uvicorn).

    app = create_app(Settings.from_env())               # Cassandra and Kafka from the settings
    app = create_app(settings, store=MemoryStore())     # read an in-process store (tests, demos)

Each route's handler is wrapped once: it answers problem+json for every ``Problem`` it raises
(and for unknown routes and methods), a 500 problem only for a bug (logged with its traceback),
and counts every answer in ``fanout_http_requests_total`` / ``fanout_http_request_seconds``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from fanout.settings import Settings
from fanout.store import Store

from . import metrics
from .backends import Backends, Publisher
from .openapi import openapi_document
from .problems import Problem
from .routes import Api

log = logging.getLogger("fanout.http")
Handler = Callable[[Request], Awaitable[Response]]


def create_app(
    settings: Settings | None = None, *, store: Store | None = None, publisher: Publisher | None = None
) -> Starlette:
    """The API on ``settings`` (default: ``Settings.from_env()``). ``store`` and ``publisher``
    replace the Cassandra store and the Kafka producer the settings name; the app closes them."""
    settings = settings or Settings.from_env()
    backends = Backends(settings, store=store, publisher=publisher)
    api = Api(settings, backends)
    document = openapi_document(settings)

    async def openapi(request: Request) -> Response:
        return Response(document, media_type="application/json")

    async def prometheus(request: Request) -> Response:
        return Response(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)

    table: list[tuple[str, str, Handler]] = [
        ("GET", "/healthz", api.healthz),
        ("GET", "/readyz", api.readyz),
        ("GET", "/openapi.json", openapi),
        ("GET", "/metrics", prometheus),
        ("GET", "/v1/feeds/{kind}/{user:path}", api.feed),
        # the marks first: their paths also match the read's `{user:path}` (a 405 names the first match's methods)
        ("POST", "/v1/notifications/{user:path}/seen", api.mark_seen),
        ("POST", "/v1/notifications/{user:path}/read", api.mark_read),
        ("GET", "/v1/notifications/{user:path}", api.notifications),
        ("POST", "/v1/activities", api.post_activity),
        ("GET", "/v1/activities/{id:path}/delivery", api.delivery),
        ("DELETE", "/v1/activities/{id:path}", api.delete_activity),
        ("POST", "/v1/follows", api.post_follow),
        ("GET", "/v1/users/{user:path}/followers", api.followers),
        ("GET", "/v1/users/{user:path}/following", api.following),
    ]
    routes = [Route(path, _endpoint(path, handler), methods=[method]) for method, path, handler in table]

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        checks = await backends.ready()  # connect early; a backend that is down is only logged
        for backend, state in checks.items():
            if state != "ok":
                log.warning("%s not ready at start: %s", backend, state)
        try:
            yield
        finally:
            await backends.close()

    app = Starlette(
        routes=routes,
        exception_handlers={HTTPException: _http_exception},
        lifespan=lifespan,
    )
    # `/v1/feeds/timeline` is a 404 problem, not a redirect to a URL built from the Host header
    app.router.redirect_slashes = False
    return app


def _endpoint(route: str, handler: Handler) -> Handler:
    async def endpoint(request: Request) -> Response:
        start = time.perf_counter()
        try:
            response = await handler(request)
        except Problem as problem:
            response = problem.response()
        except Exception:
            log.exception("%s %s failed", request.method, request.url.path)
            response = Problem(500, "internal", "Internal error", "the server failed; the log has the details"
                               ).response()
        metrics.SECONDS.labels(route).observe(time.perf_counter() - start)
        metrics.REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        return response

    return endpoint


async def _http_exception(request: Request, exc: Exception) -> Response:
    """Unknown routes (404) and methods (405), as problems."""
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    if status == 405:
        problem = Problem(405, "method-not-allowed", "Method not allowed",
                          f"{request.method} is not allowed on {request.url.path}")
    else:
        problem = Problem(status, "not-found" if status == 404 else "http-error", "Not found" if status == 404
                          else "HTTP error", f"no route for {request.method} {request.url.path}")
    response = problem.response()
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)
    metrics.REQUESTS.labels("unmatched", metrics.method_label(request.method), str(status)).inc()
    return response
