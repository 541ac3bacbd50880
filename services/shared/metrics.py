"""Prometheus metrics, all named pi_jobs_*; each process serves its own at /metrics."""

import asyncio
import math
import os
import time
from collections.abc import Callable
from typing import get_args

from aiokafka import AIOKafkaConsumer
from aiokafka.errors import IllegalStateError
from fastapi import FastAPI, Request, Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.shared.view import JobStatus, ViewReader
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
JOBS_FINISHED = Counter(
    "pi_jobs_jobs_finished_total", "Jobs a calculator finished", ["outcome", "digits_source"]
)
DIGITS_COMPUTED = Counter("pi_jobs_digits_computed_total", "Decimals of pi computed")
JOBS_FROM_STORED = Counter(
    "pi_jobs_jobs_served_from_stored_digits_total", "Jobs completed from digits already stored"
)
JOB_SECONDS = Histogram(
    "pi_jobs_job_duration_seconds",
    "From request to completion, by size (decimals, rounded up to a power of ten)",
    ["size"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
# Read from the view at each scrape: with several API processes, the latest reading counts.
JOBS_BY_STATE = Gauge(
    "pi_jobs_jobs", "Jobs in the view, by state", ["state"], multiprocess_mode="mostrecent"
)
STORED_DIGITS = Gauge(
    "pi_jobs_stored_digits",
    "Leading decimals of pi stored in the view",
    multiprocess_mode="mostrecent",
)
CONSUMER_LAG = Gauge(
    "pi_jobs_consumer_lag", "Records not yet read by a consumer", ["group", "topic", "partition"]
)


# Anything else a client makes up counts as "other": labels must not grow without bound.
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS"})


def size_label(num: int) -> str:
    return f"1e{max(0, math.ceil(math.log10(num)))}"


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


def view_gauges(view: ViewReader) -> Callable[[], None]:
    """Sets the gauges read from the view, for a /metrics that serves them."""

    def update() -> None:
        counts = view.count_by_status()
        for state in get_args(JobStatus):
            JOBS_BY_STATE.labels(state).set(counts.get(state, 0))
        STORED_DIGITS.set(view.stored_digits())

    return update


async def track_consumer_lag(consumer: AIOKafkaConsumer, group: str) -> None:
    """Every few seconds, how far each assigned partition's end is ahead of the consumer."""
    while True:
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            try:
                position = await consumer.position(tp)
            except IllegalStateError:
                continue  # no longer assigned: a rebalance happened meanwhile
            if end is not None:
                CONSUMER_LAG.labels(group, tp.topic, tp.partition).set(max(end - position, 0))
        await asyncio.sleep(2)
