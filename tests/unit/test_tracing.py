"""Tracing: off by default, on with the OTEL_* variables, a job's context carried in headers."""

import asyncio
import itertools
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from opentelemetry import trace
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.shared import tracing
from services.shared.events import JobRequested
from tests.support import OtlpPosts, otlp_collector, parent_id, span_id, trace_id, wait_until

_OTEL_VARIABLES = (
    "OTEL_SDK_DISABLED",
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_RESOURCE_ATTRIBUTES",
)


@pytest.fixture
def no_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _OTEL_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@dataclass(frozen=True)
class _Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    headers: tracing.ReceivedHeaders
    value: bytes | None = None


@pytest.mark.usefixtures("no_otel_variables")
def test_tracing_is_off_without_otel_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert tracing.tracer_provider("api") is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert tracing.tracer_provider("api") is None
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing.tracer_provider("api") is None


def test_off_no_span_is_made_and_no_header_sent() -> None:
    tracing.use(None)

    async def handle(request: str) -> str:
        return request

    async def publish(event: JobRequested) -> tuple[int, int]:
        return 0, 0

    # The API's hot paths are left as they are: not even a wrapper to call.
    assert tracing.serving("POST /pi_job", handle) is handle
    assert tracing.publishing(publish) is publish
    with tracing.span("POST /pi_job"), tracing.span("publish JobRequested", "job"):
        assert trace.get_current_span() is trace.INVALID_SPAN
        assert tracing.record_headers("job") is None
    with tracing.continuing(
        [("job", [("traceparent", b"00-" + b"1" * 32 + b"-" + b"2" * 16 + b"-01")])]
    ):
        assert tracing.record_headers("job") is None


@pytest.fixture
def collector() -> Iterator[tuple[str, OtlpPosts]]:
    with otlp_collector() as (url, received):
        yield url, received


@pytest.mark.usefixtures("no_otel_variables")
@pytest.mark.parametrize("exporter_variable", [True, False], ids=["otlp", "endpoint-only"])
def test_spans_go_to_the_otlp_endpoint_the_environment_names(
    monkeypatch: pytest.MonkeyPatch, collector: tuple[str, OtlpPosts], exporter_variable: bool
) -> None:
    url, received = collector
    if exporter_variable:
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url)
    provider = tracing.tracer_provider("calculator")
    assert provider is not None
    tracing.use(provider)
    try:
        with tracing.span("compute", "job-1", num=12):
            pass
        assert provider.force_flush()
    finally:
        tracing.use(None)
        provider.shutdown()
    wait_until(lambda: received, 10, "an export to the collector")
    path, content_type, body = received[0]
    assert (path, content_type) == ("/v1/traces", "application/x-protobuf")
    export = ExportTraceServiceRequest.FromString(body)
    resource = {a.key: a.value.string_value for a in export.resource_spans[0].resource.attributes}
    assert resource["service.name"] == "pi-jobs-calculator"
    assert resource["service.namespace"] == "pi-jobs"
    exported = export.resource_spans[0].scope_spans[0].spans[0]
    attributes = {a.key: a.value for a in exported.attributes}
    assert exported.name == "compute"
    assert attributes["pi_jobs.job_id"].string_value == "job-1"
    assert attributes["pi_jobs.num"].int_value == 12


@pytest.mark.usefixtures("no_otel_variables")
def test_otel_service_name_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "pi-api-eu")
    provider = tracing.tracer_provider("api")
    assert provider is not None
    assert provider.resource.attributes["service.name"] == "pi-api-eu"
    provider.shutdown()


def _named(spans: tuple[ReadableSpan, ...], name: str) -> ReadableSpan:
    (span,) = (span for span in spans if span.name == name)
    return span


async def test_a_job_carries_its_trace_from_service_to_service(
    traced: InMemorySpanExporter,
) -> None:
    # The API: its request and publish spans; the record carries the publish span on.
    with tracing.span("POST /pi_job"), tracing.span("publish JobRequested", "a"):
        requested = tracing.record_headers("a")
    assert requested is not None and [name for name, _ in requested] == ["traceparent"]

    # The calculator, in another context: a task started inside `continuing` computes.
    async def compute() -> tracing.Headers | None:
        with tracing.span("compute", "a"):
            return tracing.record_headers("a")

    with tracing.continuing([("a", requested)]):
        task = asyncio.create_task(compute())
    completed = await task
    assert completed is not None and completed != requested

    # The projector: each record's apply span is a child of what the record carries.
    tracing.applied("apply", [_Record("events", 0, 7, b"a", completed)], 0)
    spans = traced.get_finished_spans()
    assert len({trace_id(span) for span in spans}) == 1
    chain = ["POST /pi_job", "publish JobRequested", "compute", "apply"]
    for parent, child in itertools.pairwise(chain):
        assert parent_id(_named(spans, child)) == span_id(_named(spans, parent)), child
    assert _named(spans, "apply").attributes == {
        "messaging.system": "kafka",
        "messaging.destination.name": "events",
        "messaging.destination.partition.id": "0",
        "messaging.kafka.offset": 7,
        "messaging.kafka.message.key": "a",
    }


def test_jobs_completed_together_each_keep_their_own_trace(traced: InMemorySpanExporter) -> None:
    requests = []
    for job_id in ("a", "b"):
        with tracing.span("publish JobRequested", job_id):
            requests.append((job_id, tracing.record_headers(job_id)))
    with tracing.continuing(requests):  # no span is current: each job's own trace is used
        carried = {job_id: tracing.record_headers(job_id) for job_id in ("a", "b")}
    assert carried == dict(requests)
    # A record that carries no trace gets no span.
    tracing.applied("apply", [_Record("events", 0, 1, b"c", [])], 0)
    assert [span.name for span in traced.get_finished_spans()] == ["publish JobRequested"] * 2
