"""Event contracts shared by every service: the only shapes that go into the Kafka log.

Every event is a frozen, versioned pydantic model named in the past tense. Job events are keyed
by job id on the events topic, so one job's events stay in order; digit chunks live on their own
topic, keyed by chunk index.
"""

from datetime import UTC, datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

# Decimals of pi are stored in chunks of this many digits: chunk k holds decimals
# [k * DIGITS_PER_CHUNK, k * DIGITS_PER_CHUNK + len(digits)). Fits Kafka's default 1 MB messages.
DIGITS_PER_CHUNK = 500_000


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
    digits: str = Field(pattern=r"^[0-9]+$", max_length=DIGITS_PER_CHUNK)

    @property
    def start(self) -> int:
        return self.chunk_index * DIGITS_PER_CHUNK

    @property
    def end(self) -> int:
        return self.start + len(self.digits)


JobEvent = Annotated[
    JobRequested | JobStarted | JobCompleted | JobFailed, Field(discriminator="type")
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
