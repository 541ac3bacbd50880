"""The public HTTP address: submit jobs, read their status, download their results."""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from services.api.errors import ApiError, install_error_handlers
from services.api.gateway import proxy_download
from services.api.job_ids import is_job_id
from services.api.jobs import job_status, submit_job
from services.api.readiness import check_readiness
from services.api.submission import MAX_BODY_BYTES, media_type, parse_num, validate_num
from services.shared.events import JobRequested
from services.shared.kafka import connect_with_retry, durable_producer, ensure_topics, publish
from services.shared.settings import ApiSettings, KafkaSettings
from services.shared.view import ViewReader

log = logging.getLogger("api")


@dataclass
class _Connections:
    producer: AIOKafkaProducer | None = None
    downloader: httpx.AsyncClient = field(default_factory=httpx.AsyncClient)


def create_app(api: ApiSettings, kafka: KafkaSettings, view: ViewReader) -> FastAPI:
    connections = _Connections(
        downloader=httpx.AsyncClient(base_url=api.pi_jobs_downloader_url, timeout=30)
    )

    async def connect() -> None:
        await connect_with_retry(lambda: ensure_topics(kafka), "api")
        producer = durable_producer(kafka)
        await connect_with_retry(producer.start, "api")
        connections.producer = producer
        log.info("connected to kafka")

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        # Serve (and answer 503 to submissions) while Kafka is still unreachable.
        connecting = asyncio.create_task(connect())
        yield
        connecting.cancel()
        if connections.producer is not None:
            await connections.producer.stop()
        await connections.downloader.aclose()

    app = FastAPI(title="pi-jobs", lifespan=lifespan)
    install_error_handlers(app)

    async def publish_request(event: JobRequested) -> tuple[int, int]:
        if connections.producer is None:
            raise ApiError(503, "the job queue is not reachable yet: try again shortly")
        try:
            return await publish(connections.producer, kafka.events_topic, event.job_id, event)
        except KafkaError:
            log.exception("publishing failed", extra={"job_id": event.job_id})
            raise ApiError(503, "the job queue is unavailable: try again shortly") from None

    @app.post("/pi_job")
    async def create_job(request: Request) -> dict[str, Any]:
        content_type = request.headers.get("content-type", "")
        if int(request.headers.get("content-length") or 0) > MAX_BODY_BYTES:
            raise ApiError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
        if media_type(content_type) == "multipart/form-data":
            form = await request.form()
            num = validate_num(form.get("num"), api.pi_jobs_max_num)
        else:
            num = parse_num(await request.body(), content_type, api.pi_jobs_max_num)
        job_id = await submit_job(
            num, publish_request, view, kafka.events_topic, api.pi_jobs_projection_wait_seconds
        )
        return {"success": True, "job_id": job_id}

    @app.get("/pi_job/{job_id}")
    def get_job(job_id: str) -> dict[str, Any]:
        return job_status(job_id, view)

    @app.get("/download_pi_job/{job_id}")
    async def download(job_id: str) -> StreamingResponse:
        if not is_job_id(job_id):
            raise ApiError(404, f"no job with id {job_id[:80]!r}")
        return await proxy_download(connections.downloader, f"/download_pi_job/{job_id}")

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"success": True}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        problems = await check_readiness(kafka, connections.producer, connections.downloader)
        if problems:
            return JSONResponse({"success": False, "error": "; ".join(problems)}, status_code=503)
        return JSONResponse({"success": True})

    return app
