"""The public HTTP address: submit jobs, read their status, download their results."""

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import FastAPI, Header, Query, Request
from fastapi.responses import FileResponse, JSONResponse, StreamingResponse
from fastapi.staticfiles import StaticFiles

from services.api.accepted import ViewWithAccepted
from services.api.gateway import proxy_download
from services.api.jobs import JobCommands, cancel_job, job_status, submit_job
from services.api.listing import MAX_PAGE, list_jobs
from services.api.live import status_events
from services.api.publishing import EventPublisher
from services.api.quota import SubmissionQuota
from services.api.readiness import check_readiness
from services.api.submission import read_num
from services.shared.metrics import install_metrics, view_gauges
from services.shared.settings import ApiSettings, KafkaSettings
from services.shared.view import JobStatus, ViewReader
from services.shared.web import ApiError, find_job, install_error_handlers

log = logging.getLogger("api")

_STATIC = Path(__file__).parent / "static"  # the web page: plain HTML, CSS and JS
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


def create_app(api: ApiSettings, kafka: KafkaSettings, store: ViewReader) -> FastAPI:
    view = ViewWithAccepted(store)
    publisher = EventPublisher(kafka)
    downloader = httpx.AsyncClient(base_url=api.pi_jobs_downloader_url, timeout=30)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Serve (and answer 503 to submissions) while Kafka is still unreachable.
        connecting = asyncio.create_task(publisher.connect())
        yield
        connecting.cancel()
        await publisher.close()
        await downloader.aclose()

    # No redirects to a slash-less path: they would be built from the client's Host header.
    app = FastAPI(title="pi-jobs", lifespan=lifespan, redirect_slashes=False)
    install_error_handlers(app)
    install_metrics(app, "api", before_scrape=view_gauges(view))

    quota = SubmissionQuota(api.pi_jobs_submissions_per_second, api.pi_jobs_submission_burst)
    commands = JobCommands(
        publisher.publish, view, kafka.events_topic, api.pi_jobs_projection_wait_seconds
    )

    @app.post("/pi_job", openapi_extra=_submission_schema(api.pi_jobs_max_num))
    async def create_job(
        request: Request,
        idempotency_key: Annotated[
            str | None, Header(json_schema_extra={"pattern": _IDEMPOTENCY_KEY.pattern})
        ] = None,
    ) -> dict[str, Any]:
        if idempotency_key is not None and not _IDEMPOTENCY_KEY.fullmatch(idempotency_key):
            raise ApiError(400, "Idempotency-Key must be 1 to 200 printable ASCII characters")
        num = await read_num(request, api.pi_jobs_max_num)
        quota.take(request.client.host if request.client else "unknown")
        job_id = await submit_job(num, idempotency_key, commands)
        return {"success": True, "job_id": job_id}

    @app.get("/pi_job/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return job_status(job_id, view)

    @app.delete("/pi_job/{job_id}")
    async def delete_job(job_id: str) -> dict[str, Any]:
        return await cancel_job(job_id, commands)

    @app.get("/pi_job/{job_id}/events")
    async def job_events(job_id: str) -> StreamingResponse:
        return StreamingResponse(
            await status_events(job_id, view),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/pi_jobs")
    def get_jobs(
        status: JobStatus | None = None,
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
        cursor: str | None = None,
    ) -> dict[str, Any]:
        return list_jobs(view, status, limit, cursor)

    @app.get("/download_pi_job/{job_id}")
    async def download(
        job_id: str, if_none_match: Annotated[str | None, Header()] = None
    ) -> StreamingResponse:
        await asyncio.to_thread(find_job, job_id, view)  # 404s are answered here, not forwarded
        path = f"/download_pi_job/{job_id}"
        return await proxy_download(downloader, path, if_none_match)

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(_STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    app.mount("/static", StaticFiles(directory=_STATIC), name="static")

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"success": True}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        problems = await check_readiness(kafka, publisher.producer, downloader)
        if problems:
            return JSONResponse({"success": False, "error": "; ".join(problems)}, status_code=503)
        return JSONResponse({"success": True})

    return app
