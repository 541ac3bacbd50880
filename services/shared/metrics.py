"""Prometheus metrics, all named pi_jobs_*; each process serves its own at /metrics.

Here are the HTTP metrics that every service has. A metric of one service is defined in that
service (services/calculator/metrics.py, services/projector/handler.py, services/api/view_gauges.py,
services/shared/consumer_lag.py for the consumers): defined here, every service would export it.
"""

import os
import time
from collections.abc import Callable

from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.shared.web import ApiError

HTTP_REQUESTS = Counter(
    "pi_jobs_http_requests_total",
    "HTTP requests answered",
    ["service", "method", "route", "status"],
)
HTTP_SECONDS = Histogram(
    "pi_jobs_http_request_duration_seconds",
    "Time to answer an HTTP request (to its first byte)",
    ["service", "route"],
)

# Anything else a client makes up counts as "other": labels must not grow without bound.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def install_metrics(
    app: FastAPI, service: str, before_scrape: Callable[[], None] = lambda: None
) -> None:
    """GET /metrics, and a count and timing of every request by route."""
    metrics_route(app, before_scrape)
    app.add_middleware(CountRequests, service=service)


def metrics_route(
    app: FastAPI,
    before_scrape: Callable[[], None] = lambda: None,
    allowed: Callable[[str | None], bool] = lambda _: True,
) -> None:
    """GET /metrics, to the client addresses `allowed` (others get a 404, as for no route)."""

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        if not allowed(request.client.host if request.client else None):
            raise ApiError(404, "no such endpoint")
        before_scrape()
        return Response(generate_latest(_registry()), media_type=CONTENT_TYPE_LATEST)


class CountRequests:
    """Counts and times requests by route template. A plain ASGI middleware, so an error in
    the middle of a streamed response still cuts the connection short (Starlette's
    BaseHTTPMiddleware would end it cleanly, and a truncated zip would look complete)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self._app = app
        self._service = service
        # Labelled children, looked up once: prometheus_client's labels() is not cheap.
        self._timers: dict[str, Histogram] = {}
        self._counters: dict[tuple[str, str, int], Counter] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_note(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                self._timer(_route(scope)).observe(time.perf_counter() - started)
            await send(message)

        try:
            await self._app(scope, receive, send_and_note)
        finally:
            method = scope["method"] if scope["method"] in _KNOWN_METHODS else "other"
            self._counter(method, _route(scope), status).inc()

    def _timer(self, route: str) -> Histogram:
        timer = self._timers.get(route)
        if timer is None:
            timer = self._timers[route] = HTTP_SECONDS.labels(self._service, route)
        return timer

    def _counter(self, method: str, route: str, status: int) -> Counter:
        key = (method, route, status)
        counter = self._counters.get(key)
        if counter is None:
            counter = self._counters[key] = HTTP_REQUESTS.labels(
                self._service, method, route, status
            )
        return counter


def _route(scope: Scope) -> str:
    """The route template, never the raw path (which holds ids without end)."""
    return getattr(scope.get("route"), "path", "unmatched")


def _registry() -> CollectorRegistry:
    """This process's metrics; or, when several processes serve one address (the API), the sum
    of what each wrote to PROMETHEUS_MULTIPROC_DIR."""
    if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
        return REGISTRY
    registry = CollectorRegistry()
    MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    return registry
