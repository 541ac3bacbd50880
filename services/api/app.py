"""The public HTTP address: submit jobs, read their status, download their results."""

import asyncio
import contextlib
import logging
import re
import signal
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

import httpx
from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    JSONResponse,
    Response,
    StreamingResponse,
)
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Scope

from services.api.accepted import ViewWithAccepted
from services.api.admission import Admission, CostLimits
from services.api.browser_safety import PAGE_POLICY, BrowserSafety
from services.api.callers import ApiKeys
from services.api.gateway import Downloads, DownloadSlots, respond_then
from services.api.hot_paths import HotPaths
from services.api.jobs import Jobs, cancel_job, current_status, submit_job
from services.api.listing import MAX_PAGE, list_jobs
from services.api.live import status_events
from services.api.log_ends import LogEndReader, LogEnds
from services.api.pi_digits import add_digit_routes
from services.api.pi_text import StoredText
from services.api.publishing import EventPublisher, Publisher
from services.api.quota import SubmissionQuota
from services.api.readiness import check_readiness, missing_consumers
from services.api.statuses import (
    FinishedStatuses,
    JobAccepted,
    JobListBody,
    JobStatusBody,
    list_json,
)
from services.api.submission import read_submission
from services.api.view_gauges import view_gauges
from services.api.watcher import ViewWatcher
from services.shared import tracing
from services.shared.connections import in_networks, parse_networks
from services.shared.downloads import require_complete
from services.shared.logs import configure_logging
from services.shared.metrics import CountRequests, metrics_route
from services.shared.runtime import die_with_parent, stop_if_it_fails
from services.shared.settings import ApiSettings, KafkaSettings, ViewSettings, ZipCacheSettings
from services.shared.view import JobStatus, ViewReader, read_view
from services.shared.view_stores import open_view
from services.shared.web import ApiError, header, install_error_handlers, readiness
from services.shared.zip_cache import ZipCache

log = logging.getLogger("api")

_STATIC = Path(__file__).parent / "static"  # the web page: plain HTML, CSS and JS
_PAGE_HEADERS = {"Cache-Control": "no-cache", "Content-Security-Policy": PAGE_POLICY}
_CONNECT_BEFORE_SERVING_SECONDS = 5.0
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,200}$")


def _submission_schema(max_num: int) -> dict[str, Any]:
    """What POST /pi_job reads (it parses the body itself, to answer every form of bad input)."""
    body = {
        "type": "object",
        "required": ["num"],
        "properties": {"num": {"type": "integer", "minimum": 1, "maximum": max_num}},
    }
    media = ("application/x-www-form-urlencoded", "multipart/form-data", "application/json")
    return {"requestBody": {"required": True, "content": {m: {"schema": body} for m in media}}}


@dataclass(frozen=True)
class ApiDeps:
    """What the app talks to beyond its view: connected and closed by the app's lifespan."""

    publisher: Publisher
    # Where the events topic ends: what the read barrier waits for the view to reach.
    log_ends: LogEnds
    downloader: httpx.AsyncClient
    # The consumer roles a job needs that nothing runs now (readiness).
    missing_consumers: Callable[[], Awaitable[list[str]]]


def kafka_deps(api: ApiSettings, kafka: KafkaSettings) -> ApiDeps:
    """The broker and the downloader, as each API process talks to them."""
    return ApiDeps(
        publisher=EventPublisher(kafka),
        log_ends=LogEndReader(kafka),
        downloader=httpx.AsyncClient(base_url=api.pi_jobs_downloader_url, timeout=30),
        missing_consumers=partial(missing_consumers, kafka),
    )


def app_from_environment() -> ASGIApp:
    """The app as each API process builds it, from the environment's settings."""
    # The supervising process gone (killed, crashed) means the API is down: no orphan keeps the
    # port from a restarted one.
    die_with_parent(signal.SIGKILL)
    configure_logging("api")
    tracing.configure("api")
    view = open_view(ViewSettings().view_url)
    api, kafka = ApiSettings(), KafkaSettings()
    return create_app(api, kafka, view, ZipCacheSettings(), kafka_deps(api, kafka))


def create_app(
    api: ApiSettings,
    kafka: KafkaSettings,
    store: ViewReader,
    zips: ZipCacheSettings,
    deps: ApiDeps,
) -> ASGIApp:
    """The FastAPI app, behind the hot paths and the request metrics. `kafka` names the topics;
    `deps` are what it publishes and reads through."""
    view = ViewWithAccepted(store)
    watcher = ViewWatcher(view)
    finished = FinishedStatuses()
    publisher, log_ends, downloader = deps.publisher, deps.log_ends, deps.downloader
    downloads = Downloads(
        ZipCache(zips.pi_jobs_zip_cache_dir, zips.pi_jobs_zip_cache_bytes), downloader
    )
    download_slots = DownloadSlots(api.pi_jobs_max_downloads_per_client)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        background = [
            asyncio.create_task(publisher.connect()),
            asyncio.create_task(log_ends.connect()),
            asyncio.create_task(watcher.run()),
        ]
        for task in background:
            stop_if_it_fails(task)
        # Each process (there are several) serves once connected to Kafka, or after a few
        # seconds anyway, answering 503 to submissions while Kafka is unreachable.
        await asyncio.wait(background[:2], timeout=_CONNECT_BEFORE_SERVING_SECONDS)
        yield
        for task in background:
            task.cancel()
        await publisher.close()
        await log_ends.close()
        await downloader.aclose()

    # No redirects to a slash-less path: they would be built from the client's Host header.
    # FastAPI's /docs and /redoc load their scripts from a CDN: /docs is served below instead.
    app = FastAPI(
        title="pi-jobs",
        description="Digits of pi as asynchronous jobs: submit one, follow it, download its zip.",
        lifespan=lifespan,
        redirect_slashes=False,
        docs_url=None,
        redoc_url=None,
    )
    install_error_handlers(app)

    quota = SubmissionQuota(api.pi_jobs_submissions_per_second, api.pi_jobs_submission_burst)
    keys = ApiKeys(api.pi_jobs_api_keys.get_secret_value())
    metrics_networks = parse_networks(api.pi_jobs_metrics_networks)
    jobs = Jobs(
        tracing.publishing(publisher.publish),
        view,
        watcher,
        log_ends.read,
        kafka.events_topic,
        api.pi_jobs_projection_wait_seconds,
    )
    admission = Admission(
        CostLimits(api.pi_jobs_max_pending_decimals_per_client, api.pi_jobs_max_queued_decimals),
        view,
        jobs.catch_up,
    )

    async def submission(request: Request) -> Response:
        idempotency_key = request.headers.get("idempotency-key")
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise ApiError(400, "Idempotency-Key must be 1 to 200 printable ASCII characters")
        caller = keys.caller(request.scope)
        submission = await read_submission(request, api.pi_jobs_max_num)
        quota.take(caller.address)
        job_id = await submit_job(submission, idempotency_key, caller, jobs, admission)
        return Response(
            b'{"success":true,"job_id":"' + job_id.encode() + b'"}', media_type="application/json"
        )

    submit = tracing.serving("POST /pi_job", submission)  # where a job's trace starts

    async def status(scope: Scope, job_id: str) -> Response:
        caller = keys.caller(scope)
        rendered = await current_status(job_id, caller, jobs, finished, _with_worker(scope))
        return rendered.response(header(scope, b"if-none-match"))

    # Served by HotPaths below; declared here for the OpenAPI schema (and as a fallback).
    @app.post(
        "/pi_job",
        openapi_extra=_submission_schema(api.pi_jobs_max_num),
        response_model=JobAccepted,
    )
    async def create_job(
        request: Request,
        idempotency_key: Annotated[
            str | None, Header(json_schema_extra={"pattern": _IDEMPOTENCY_KEY.pattern})
        ] = None,
    ) -> Response:
        return await submit(request)

    @app.get("/pi_job/{job_id}", response_model=JobStatusBody)
    async def get_job(
        job_id: str,
        request: Request,
        if_none_match: Annotated[str | None, Header()] = None,
        include: _Include = None,
    ) -> Response:
        return await status(request.scope, job_id)

    @app.delete("/pi_job/{job_id}")
    async def delete_job(job_id: str, request: Request) -> dict[str, Any]:
        return await cancel_job(job_id, keys.caller(request.scope), jobs)

    @app.get("/pi_job/{job_id}/events")
    async def job_events(job_id: str, request: Request) -> StreamingResponse:
        return StreamingResponse(
            await status_events(job_id, keys.caller(request.scope), jobs),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/pi_jobs", response_model=JobListBody)
    async def get_jobs(
        request: Request,
        status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        cursor: str | None = None,
        include: _Include = None,
    ) -> Response:
        caller = keys.caller(request.scope)
        await jobs.catch_up()  # a job submitted just before is listed
        owner = caller.owner if caller.keyed else None
        with_worker = include == "worker"
        page = await read_view(view, list_jobs, view, status, limit, cursor, owner, with_worker)
        return Response(list_json(page), media_type="application/json")

    @app.api_route("/download_pi_job/{job_id}", methods=["GET", "HEAD"], response_model=None)
    async def download(job_id: str, request: Request) -> Response:
        caller = keys.caller(request.scope)
        job = await jobs.find(job_id, caller)  # 404s are answered here, not forwarded
        job = require_complete(job, await read_view(view, view.stored_digits, job.radix))
        release = download_slots.take(caller.address)
        try:
            response = await downloads.respond(job, request.method, request.headers)
        except BaseException:
            release()
            raise
        return respond_then(response, release)

    # The web page, told the largest num this API takes (its form checks it before sending).
    page = (_STATIC / "index.html").read_text().replace("PI_JOBS_MAX_NUM", str(api.pi_jobs_max_num))

    @app.get("/", include_in_schema=False)
    def index() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    def docs() -> FileResponse:
        """The API's reference: a page of ours renders /openapi.json, with nothing from afar."""
        return FileResponse(_STATIC / "docs.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=_STATIC), name="static")

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"success": True}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        problems = await check_readiness(publisher.connected, deps.missing_consumers, downloader)
        return readiness(problems)

    add_digit_routes(
        app, {radix: StoredText(zips.pi_jobs_digit_files_dir, radix, store) for radix in (10, 16)}
    )

    metrics_route(
        app,
        before_scrape=view_gauges(view),
        allowed=lambda address: in_networks(address, metrics_networks),
    )
    hot_paths = HotPaths(
        app,
        status=status,
        submit=submit,
        status_route=_route(app, "/pi_job/{job_id}", "GET"),
        submit_route=_route(app, "/pi_job", "POST"),
    )
    allowed_origins = frozenset(o.strip() for o in api.pi_jobs_allowed_origins.split(",") if o)
    return CountRequests(BrowserSafety(hot_paths, allowed_origins), "api")


# ?include=worker: a job's status names the calculator (host and pid) that ran it.
_Include = Literal["worker"] | None


def _with_worker(scope: Scope) -> bool:
    query = scope["query_string"]
    return bool(query) and "worker" in parse_qs(query.decode("latin-1")).get("include", [])


def _route(app: FastAPI, path: str, method: str) -> APIRoute:
    return next(
        route
        for route in app.routes
        if isinstance(route, APIRoute) and route.path == path and method in (route.methods or ())
    )
