"""Event contracts shared by every service: the only shapes that go into the Kafka log.

Every event is a frozen, versioned pydantic model named in the past tense. Job events are keyed
by job id on the events topic, so one job's events stay in order; digit chunks live on their own
topic, keyed by chunk index.
"""

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

# Decimals of pi are stored in whole chunks of this many digits: chunk k holds decimals
# [k * DIGITS_PER_CHUNK, (k + 1) * DIGITS_PER_CHUNK). Part of the DigitsStored contract: changing
# it needs a new version of that event.
DIGITS_PER_CHUNK = 100_000


def utc_now() -> datetime:
    return datetime.now(UTC)


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    occurred_at: datetime = Field(default_factory=utc_now)


class JobRequested(_Event):
    """v2 added `idempotency_key` (v1 events are upcast with none)."""

    type: Literal["JobRequested"] = "JobRequested"
    version: Literal[2] = 2  # type: ignore[assignment]
    job_id: str
    num: int = Field(ge=1)
    idempotency_key: str | None = None


class JobStarted(_Event):
    type: Literal["JobStarted"] = "JobStarted"
    job_id: str
    worker: str


class JobProgressed(_Event):
    """A running job's progress; a handful per job, so the log is not flooded."""

    type: Literal["JobProgressed"] = "JobProgressed"
    job_id: str
    progress: float = Field(ge=0, le=1)
    eta_seconds: float | None = Field(default=None, ge=0)


class JobCancelled(_Event):
    type: Literal["JobCancelled"] = "JobCancelled"
    job_id: str


class JobCompleted(_Event):
    """v2 added `worker`: a job served from stored digits is completed by this one event, with
    no JobStarted before it (v1 events are upcast with none)."""

    type: Literal["JobCompleted"] = "JobCompleted"
    version: Literal[2] = 2  # type: ignore[assignment]
    job_id: str
    num: int = Field(ge=1)
    # "stored" when digits already in the log answered the job, "computed" otherwise.
    digits_source: Literal["computed", "stored"]
    compute_seconds: float = Field(ge=0)
    worker: str | None = None


class JobFailed(_Event):
    type: Literal["JobFailed"] = "JobFailed"
    job_id: str
    error: str


class DigitsStored(_Event):
    type: Literal["DigitsStored"] = "DigitsStored"
    chunk_index: int = Field(ge=0)
    digits: str = Field(
        pattern=r"^[0-9]+$", min_length=DIGITS_PER_CHUNK, max_length=DIGITS_PER_CHUNK
    )

    @property
    def start(self) -> int:
        return self.chunk_index * DIGITS_PER_CHUNK

    @property
    def end(self) -> int:
        return self.start + DIGITS_PER_CHUNK


JobEvent = Annotated[
    JobRequested | JobStarted | JobProgressed | JobCompleted | JobFailed | JobCancelled,
    Field(discriminator="type"),
]
Event = JobEvent | DigitsStored

_job_event_adapter: TypeAdapter[JobEvent] = TypeAdapter(JobEvent)


class UnreadableEvent(ValueError):
    """A record on a topic that is not a valid event of a known type and version."""


def _job_requested_v1_to_v2(v1: dict[str, Any]) -> dict[str, Any]:
    return {**v1, "version": 2, "idempotency_key": None}


def _job_completed_v1_to_v2(v1: dict[str, Any]) -> dict[str, Any]:
    return {**v1, "version": 2, "worker": None}


# Each turns an event as an older version of the code wrote it into the next version, so the
# log never needs rewriting: (type, version) -> upcaster.
_UPCASTERS: dict[tuple[Any, Any], Callable[[dict[str, Any]], dict[str, Any]]] = {
    ("JobRequested", 1): _job_requested_v1_to_v2,
    ("JobCompleted", 1): _job_completed_v1_to_v2,
}


def _upcast(document: dict[str, Any]) -> dict[str, Any]:
    while (key := (document.get("type"), document.get("version"))) in _UPCASTERS:
        document = _UPCASTERS[key](document)
    return document


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode_job_event(raw: bytes | None) -> JobEvent:
    if raw is None:
        raise UnreadableEvent("record has no value")
    try:
        return _job_event_adapter.validate_json(raw)  # the fast path: an event of today
    except ValidationError as error:
        first_error = error
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise UnreadableEvent(f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise UnreadableEvent("not a JSON object")
    try:
        return _job_event_adapter.validate_python(_upcast(document))
    except ValidationError:
        raise UnreadableEvent(_describe(first_error)) from first_error


def decode_digits(raw: bytes | None) -> DigitsStored:
    if raw is None:
        raise UnreadableEvent("record has no value")
    try:
        return DigitsStored.model_validate_json(raw)
    except ValidationError as error:
        raise UnreadableEvent(_describe(error)) from error


def _describe(error: ValidationError) -> str:
    """A short reason for the dead-letter topic, without echoing a huge payload."""
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in error.errors()[:3]
    ]
    return "; ".join(problems)
