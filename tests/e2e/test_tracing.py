"""Tracing turned on as a user turns it on, with the OTEL_* variables: every service, a process
of its own, sends its spans over OTLP, and a job's spans from all three form one trace."""

from pathlib import Path

import httpx
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tests.e2e.helpers import submit, wait_complete
from tests.stacks import start_stack, stop_stack
from tests.support import OtlpPosts, otlp_collector, wait_until

Span = tuple[str, str, bytes, dict[str, str]]  # (service, name, trace id, string attributes)
EVERY_PART = {
    ("pi-jobs-api", "POST /pi_job"),
    ("pi-jobs-api", "publish JobRequested"),
    ("pi-jobs-calculator", "compute"),
    ("pi-jobs-projector", "apply"),
}


def _spans(posts: OtlpPosts) -> list[Span]:
    spans = []
    for path, _, body in list(posts):
        assert path == "/v1/traces"
        for resource_spans in ExportTraceServiceRequest.FromString(body).resource_spans:
            resource = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    attributes = {a.key: a.value.string_value for a in span.attributes}
                    spans.append((resource["service.name"], span.name, span.trace_id, attributes))
    return spans


def test_the_otel_variables_send_one_trace_per_job_over_otlp(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    with otlp_collector() as (endpoint, posts):
        stack = start_stack(
            kafka_bootstrap,
            tmp_path,
            extra_env={
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms between exports (5 s by default)
            },
        )
        failed = True
        try:
            with httpx.Client(base_url=stack.url, timeout=60) as client:
                job_id = submit(client, 1234)
                wait_complete(client, job_id)

            def the_jobs_trace() -> set[tuple[str, str]] | None:
                spans = _spans(posts)
                traces = {t for _, name, t, a in spans if a.get("pi_jobs.job_id") == job_id}
                if len(traces) != 1:
                    return None
                in_trace = {(service, name) for service, name, t, _ in spans if t in traces}
                return in_trace if in_trace >= EVERY_PART else None

            in_trace = wait_until(the_jobs_trace, 30, "the job's spans from every service")
            failed = False
        finally:
            stop_stack(stack, show_logs=failed)
    assert in_trace == EVERY_PART  # and nothing from anywhere else
