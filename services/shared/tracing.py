"""One trace per job, across the services: OpenTelemetry spans whose context travels in the
Kafka records' headers (W3C `traceparent`).

Off unless the standard OTEL_* variables turn it on (`configure`). Off, no span is made and
every call here returns at once; the API's hot paths are not even wrapped (`serving`,
`publishing`).

A job's context is kept per job id (`continuing`, `span`), not only as the current span: the
calculator completes a burst of jobs served from stored digits in one task, each job's event in
its own trace.
"""

import logging
import os
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from contextvars import ContextVar
from types import MappingProxyType
from typing import Protocol, TypeVar

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import SERVICE_NAME, SERVICE_NAMESPACE, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue

from services.shared.records import DeliveredRecord

log = logging.getLogger(__name__)

# A Kafka record's headers, as aiokafka takes them and as it gives them.
Headers = list[tuple[str, bytes]]
ReceivedHeaders = Sequence[tuple[str, bytes]]

_tracer: trace.Tracer | None = None  # None: tracing is off
_OFF: AbstractContextManager[None] = nullcontext()
# job id -> the context its spans and events continue, in this task (and tasks it starts).
_jobs: ContextVar[Mapping[str, Context]] = ContextVar(
    "pi_jobs_traced_jobs", default=MappingProxyType({})
)


def tracer_provider(service: str) -> TracerProvider | None:
    """The provider the environment asks for; None when tracing is off.

    On when OTEL_TRACES_EXPORTER names `otlp` (OTLP over HTTP) or `console`, or when it is unset
    and an OTLP endpoint is (OTEL_EXPORTER_OTLP_ENDPOINT, OTEL_EXPORTER_OTLP_TRACES_ENDPOINT).
    The exporter, sampler and resource read their own OTEL_* variables; the service name is
    `pi-jobs-<service>` unless OTEL_SERVICE_NAME or OTEL_RESOURCE_ATTRIBUTES names one.
    """
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    endpoint = os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or os.environ.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    names = os.environ.get("OTEL_TRACES_EXPORTER") or ("otlp" if endpoint else "none")
    exporters = [_exporter(name.strip()) for name in names.split(",")]
    chosen = [exporter for exporter in exporters if exporter is not None]
    if not chosen:
        return None
    resource = Resource.create({SERVICE_NAMESPACE: "pi-jobs"})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: f"pi-jobs-{service}"}))
    provider = TracerProvider(resource=resource)
    for exporter in chosen:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


def _exporter(name: str) -> SpanExporter | None:
    if name == "otlp":
        # Imported only when used: it brings in requests and protobuf.
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    if name == "console":
        return ConsoleSpanExporter()
    if name not in ("none", ""):
        log.warning("unknown OTEL_TRACES_EXPORTER ignored", extra={"exporter": name})
    return None


def configure(service: str) -> None:
    """Tracing as the environment asks, for this process."""
    provider = tracer_provider(service)
    use(provider)
    if provider is not None:
        log.info("tracing on", extra={"traced_as": provider.resource.attributes.get(SERVICE_NAME)})


def use(provider: TracerProvider | None) -> None:
    """Trace with `provider` from now on; None turns tracing off."""
    global _tracer
    _tracer = None if provider is None else provider.get_tracer("pi-jobs")


_Call = TypeVar("_Call")
_Result = TypeVar("_Result")


class _AboutAJob(Protocol):
    @property
    def type(self) -> str: ...
    @property
    def job_id(self) -> str: ...


_Event = TypeVar("_Event", bound=_AboutAJob)


def serving(
    name: str, handle: Callable[[_Call], Awaitable[_Result]]
) -> Callable[[_Call], Awaitable[_Result]]:
    """`handle` with each call in a server span: `handle` itself while tracing is off (as it is
    when this is called), so the hot paths pay nothing."""
    if _tracer is None:
        return handle

    async def traced(call: _Call) -> _Result:
        with span(name, kind=SpanKind.SERVER):
            return await handle(call)

    return traced


def publishing(
    publish: Callable[[_Event], Awaitable[_Result]],
) -> Callable[[_Event], Awaitable[_Result]]:
    """`publish` with each event in a producer span, "publish <type>", in the job's trace:
    `publish` itself while tracing is off (as it is when this is called)."""
    if _tracer is None:
        return publish

    async def traced(event: _Event) -> _Result:
        with span(f"publish {event.type}", event.job_id, SpanKind.PRODUCER):
            return await publish(event)

    return traced


def span(
    name: str,
    job_id: str | None = None,
    kind: SpanKind = SpanKind.INTERNAL,
    **attributes: AttributeValue,
) -> AbstractContextManager[None]:
    """A span around the block, the current one inside it; its `attributes` are prefixed with
    `pi_jobs.`. With a job id, it continues the job's trace (see `continuing`), and the job's
    records published inside carry it on."""
    if _tracer is None:
        return _OFF
    return _span(_tracer, name, job_id, kind, attributes)


@contextmanager
def _span(
    tracer: trace.Tracer,
    name: str,
    job_id: str | None,
    kind: SpanKind,
    attributes: dict[str, AttributeValue],
) -> Iterator[None]:
    named = {f"pi_jobs.{key}": value for key, value in attributes.items()}
    if job_id is not None:
        named["pi_jobs.job_id"] = job_id
    parent = None if job_id is None else _jobs.get().get(job_id)
    with tracer.start_as_current_span(name, context=parent, kind=kind, attributes=named) as current:
        if job_id is None:
            yield
        else:
            with _continued({job_id: trace.set_span_in_context(current)}):
                yield


def record_headers(key: str) -> Headers | None:
    """The headers that carry the trace on to a record about `key` (a job id): the job's own
    trace when known here, else the current span's. None when there is nothing to carry."""
    if _tracer is None:
        return None
    carrier: dict[str, str] = {}
    propagate.inject(carrier, context=_jobs.get().get(key))
    return [(name, value.encode()) for name, value in carrier.items()] or None


def continuing(
    jobs: Iterable[tuple[str, ReceivedHeaders | None]],
) -> AbstractContextManager[None]:
    """Inside the block, and in the tasks started in it, each job (id, headers of the record
    that asked for it) continues the trace its record carried."""
    if _tracer is None:
        return _OFF
    traced = {}
    for job_id, headers in jobs:
        if (context := _received(headers)) is not None:
            traced[job_id] = context
    return _continued(traced)


@contextmanager
def _continued(traced: Mapping[str, Context]) -> Iterator[None]:
    token = _jobs.set({**_jobs.get(), **traced})
    try:
        yield
    finally:
        _jobs.reset(token)


def _received(headers: ReceivedHeaders | None) -> Context | None:
    """The context a record's headers carry; None when they carry none."""
    if not headers:
        return None
    carrier = {name: value.decode("latin-1") for name, value in headers}
    context = propagate.extract(carrier, context=Context())
    return context if trace.get_current_span(context).get_span_context().is_valid else None


class ConsumedRecord(DeliveredRecord, Protocol):
    """A record with its headers, where a trace travels."""

    @property
    def headers(self) -> ReceivedHeaders: ...


def applied(name: str, records: Iterable[ConsumedRecord], started_ns: int) -> None:
    """A span for each record that carries a trace, from `started_ns` (time.time_ns()) to now:
    a batch of records is written in one go, so each one's span is the batch's write."""
    if _tracer is None:
        return
    ended_ns = time.time_ns()
    for record in records:
        context = _received(record.headers)
        if context is None:
            continue
        attributes: dict[str, AttributeValue] = {
            "messaging.system": "kafka",
            "messaging.destination.name": record.topic,
            "messaging.destination.partition.id": str(record.partition),
            "messaging.kafka.offset": record.offset,
        }
        if record.key is not None:
            attributes["messaging.kafka.message.key"] = record.key.decode("latin-1")
        done = _tracer.start_span(
            name,
            context=context,
            kind=SpanKind.CONSUMER,
            attributes=attributes,
            start_time=started_ns,
        )
        done.end(end_time=ended_ns)
