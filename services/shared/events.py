"""Event contracts shared by every service: the only shapes that go into the Kafka log.

Every event is a frozen, versioned pydantic model named in the past tense. Job events are keyed
by job id on the events topic, so one job's events stay in order; digit chunks live on their own
topic, keyed by chunk index.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

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
    type: Literal["JobRequested"] = "JobRequested"
    job_id: str
    num: int = Field(ge=1)


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
    type: Literal["JobCompleted"] = "JobCompleted"
    job_id: str
    num: int = Field(ge=1)
    # "stored" when digits already in the log answered the job, "computed" otherwise.
    digits_source: Literal["computed", "stored"]
    compute_seconds: float = Field(ge=0)


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


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode_job_event(raw: bytes | None) -> JobEvent:
    if raw is None:
        raise UnreadableEvent("record has no value")
    try:
        return _job_event_adapter.validate_json(raw)
    except ValueError as error:
        raise UnreadableEvent(str(error)) from error


def decode_digits(raw: bytes | None) -> DigitsStored:
    if raw is None:
        raise UnreadableEvent("record has no value")
    try:
        return DigitsStored.model_validate_json(raw)
    except ValueError as error:
        raise UnreadableEvent(str(error)) from error
