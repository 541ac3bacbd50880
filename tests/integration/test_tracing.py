"""One trace per job: the API (served over HTTP), the calculator and the projector, in this
process against the real broker, their spans kept by the SDK's in-memory exporter."""

import asyncio
import contextlib
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import uvicorn
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from deploy.kafka.local_broker import free_port
from services.api.app import create_app, kafka_deps
from services.shared.settings import ApiSettings, KafkaSettings, ZipCacheSettings
from services.shared.sqlite_view import SqliteView
from tests.in_process_services import calculator_and_projector
from tests.support import parent_id, span_id, trace_id, wait_until_async


@contextlib.asynccontextmanager
async def api_serving(kafka: KafkaSettings, view_path: Path, zips: Path) -> AsyncIterator[str]:
    """The API app on a free port in this process, as its processes serve it; yields its URL."""
    port = free_port()
    api = ApiSettings(pi_jobs_port=port)
    app = create_app(
        api,
        kafka,
        SqliteView(view_path),
        ZipCacheSettings(pi_jobs_zip_cache_dir=zips),
        kafka_deps(api, kafka),
    )
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None))
    serving = asyncio.create_task(server.serve())
    try:
        await wait_until_async(partial(_started, server, serving), 30, "the API to serve")
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


async def _started(server: uvicorn.Server, serving: asyncio.Task[None]) -> bool:
    if serving.done():
        serving.result()  # its error, if it failed to start
    return server.started


async def _complete(view: SqliteView, job_id: str) -> bool:
    job = view.get_job(job_id)
    return job is not None and job.status == "complete"


def _of_job(spans: tuple[ReadableSpan, ...], name: str, job_id: str) -> list[ReadableSpan]:
    """The job's spans of that name (the projector's name the record's key, the job id)."""
    return [
        span
        for span in spans
        if span.name == name
        and span.attributes is not None
        and job_id
        in (
            span.attributes.get("pi_jobs.job_id"),
            span.attributes.get("messaging.kafka.message.key"),
        )
    ]


async def test_a_jobs_request_computation_and_projection_form_one_trace(
    kafka_settings: KafkaSettings, view_path: Path, tmp_path: Path, traced: InMemorySpanExporter
) -> None:
    view = SqliteView(view_path, writer=True)
    async with (
        calculator_and_projector(kafka_settings, view),
        api_serving(kafka_settings, view_path, tmp_path / "zips") as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        computed = (await client.post("/pi_job", data={"num": "12"})).json()["job_id"]
        await wait_until_async(partial(_complete, view, computed), 60, computed)
        # The digits are stored now: this one is served from them, with no computation.
        served = (await client.post("/pi_job", data={"num": "30"})).json()["job_id"]
        await wait_until_async(partial(_complete, view, served), 60, served)

        async def applied_each_event() -> tuple[ReadableSpan, ...] | None:
            spans = traced.get_finished_spans()
            # computed: JobRequested, JobStarted, JobCompleted (and any progress); served: two.
            done = len(_of_job(spans, "apply", computed)) >= 3
            return spans if done and len(_of_job(spans, "apply", served)) == 2 else None

        spans = await wait_until_async(applied_each_event, 30, "the projector's spans")

    (publish,) = _of_job(spans, "publish JobRequested", computed)
    (compute,) = _of_job(spans, "compute", computed)
    (request,) = [s for s in spans if s.name == "POST /pi_job" and span_id(s) == parent_id(publish)]
    applies = _of_job(spans, "apply", computed)
    # One trace: the API's request and publish, the calculator's computation, the projector's
    # write of each of the job's events (and of the digits it computed).
    trace = trace_id(request)
    assert parent_id(request) is None
    assert {trace_id(s) for s in (publish, compute, *applies)} == {trace}
    digits = [s for s in spans if s.name == "apply" and trace_id(s) == trace and s not in applies]
    assert digits, "the computed digits' write belongs to the job's trace"
    assert parent_id(compute) == span_id(publish)
    # The request's record is written under the publish span, the rest under the computation.
    (requested,) = [s for s in applies if parent_id(s) == span_id(publish)]
    assert {parent_id(s) for s in (*digits, *applies) if s is not requested} == {span_id(compute)}

    # The job served from stored digits: a trace of its own, its completion written in it.
    (served_publish,) = _of_job(spans, "publish JobRequested", served)
    assert trace_id(served_publish) != trace
    assert not _of_job(spans, "compute", served)
    assert {trace_id(s) for s in _of_job(spans, "apply", served)} == {trace_id(served_publish)}
