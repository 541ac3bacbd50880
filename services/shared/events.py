"""Event contracts shared by every service: the only shapes that go into the Kafka log.

Every event is a frozen, versioned pydantic model named in the past tense. Job events are keyed
by job id on the events topic, so one job's events stay in order; digit chunks live on their own
topic, keyed by radix and chunk index (DigitsStored.record_key).
"""

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

# Decimals of pi are stored in whole chunks of this many digits: chunk k holds decimals
# [k * DIGITS_PER_CHUNK, (k + 1) * DIGITS_PER_CHUNK). Part of the DigitsStored contract: changing
# it needs a new version of that event.
DIGITS_PER_CHUNK = 100_000
# The bases a job may ask for and digits are stored in: decimal, and hexadecimal (as the Pi API).
Radix = Literal[10, 16]


def utc_now() -> datetime:
    return datetime.now(UTC)


Upcaster = Callable[[dict[str, Any]], dict[str, Any]]


class _Event(BaseModel):
    # Events we write have exactly their fields; fields that newer code added are dropped when
    # read (decode_job_event), so an event of a known version with more fields still reads.
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    occurred_at: datetime = Field(default_factory=utc_now)
    # version -> how to turn an event as that version was written into the next version, so
    # the log never needs rewriting.
    upcasters: ClassVar[dict[int, Upcaster]] = {}


class JobRequested(_Event):
    """v2 added `idempotency_key`, v3 `owner` (older events are upcast with none), v4 `radix`
    (older events asked for decimals)."""

    type: Literal["JobRequested"] = "JobRequested"
    version: Literal[4] = 4  # type: ignore[assignment]
    job_id: str
    # Digits after the point, in `radix`.
    num: int = Field(ge=1)
    idempotency_key: str | None = None
    # Who asked: an API key's name, or a pseudonym of the client's address (never the address).
    owner: str | None = None
    radix: Radix = 10
    upcasters: ClassVar[dict[int, Upcaster]] = {
        1: lambda v1: {**v1, "idempotency_key": None},
        2: lambda v2: {**v2, "owner": None},
        3: lambda v3: {**v3, "radix": 10},
    }


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
    upcasters: ClassVar[dict[int, Upcaster]] = {1: lambda v1: {**v1, "worker": None}}


class JobFailed(_Event):
    type: Literal["JobFailed"] = "JobFailed"
    job_id: str
    error: str


_DIGIT_PATTERNS: dict[int, re.Pattern[str]] = {
    10: re.compile(r"[0-9]+"),
    16: re.compile(r"[0-9a-f]+"),
}


class DigitsStored(_Event):
    """Chunk `chunk_index` of pi's digits after the point in `radix`. v2 added `radix` (v1
    chunks were decimals)."""

    type: Literal["DigitsStored"] = "DigitsStored"
    version: Literal[2] = 2  # type: ignore[assignment]
    radix: Radix = 10
    chunk_index: int = Field(ge=0)
    digits: str = Field(min_length=DIGITS_PER_CHUNK, max_length=DIGITS_PER_CHUNK)
    upcasters: ClassVar[dict[int, Upcaster]] = {1: lambda v1: {**v1, "radix": 10}}

    @model_validator(mode="after")
    def _digits_of_the_radix(self) -> "DigitsStored":
        if not _DIGIT_PATTERNS[self.radix].fullmatch(self.digits):
            raise ValueError(f"digits must be radix-{self.radix} digits (lower case)")
        return self

    @property
    def record_key(self) -> str:
        """Its key on the digits topic, which is compacted by key: one record per chunk."""
        prefix = "chunk" if self.radix == 10 else "hex-chunk"
        return f"{prefix}-{self.chunk_index}"

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
_JOB_EVENT_TYPES: dict[str, type[_Event]] = {
    cls.model_fields["type"].default: cls
    for cls in (JobRequested, JobStarted, JobProgressed, JobCompleted, JobFailed, JobCancelled)
}


class UnreadableEvent(ValueError):
    """A record on a topic that is not a valid event of a known type and version."""


class NewerEvent(ValueError):
    """An event of a known type written by newer code (a version this code does not know yet):
    not bad, only too new. A consumer holds its partition there until it is upgraded."""

    def __init__(self, type_name: str, version: int, known: int) -> None:
        super().__init__(f"{type_name} v{version} (this code reads up to v{known})")
        self.type_name, self.version, self.known = type_name, version, known


def encode(event: Event) -> bytes:
    return event.model_dump_json().encode()


def decode_job_event(raw: bytes | None) -> JobEvent:
    try:
        return _job_event_adapter.validate_json(raw or b"")  # the fast path: an event of today
    except ValidationError as error:
        first_error = error
    document = _document(raw)
    cls = _JOB_EVENT_TYPES.get(str(document.get("type")))
    if cls is None:
        raise UnreadableEvent(_describe(first_error))
    return _job_event_adapter.validate_python(_as_current(cls, document, first_error))


def decode_digits(raw: bytes | None) -> DigitsStored:
    try:
        return DigitsStored.model_validate_json(raw or b"")
    except ValidationError as error:
        first_error = error
    document = _as_current(DigitsStored, _document(raw), first_error)
    return DigitsStored.model_validate(document)


def _document(raw: bytes | None) -> dict[str, Any]:
    if raw is None:
        raise UnreadableEvent("record has no value")
    try:
        document = json.loads(raw)
    except ValueError as error:
        raise UnreadableEvent(f"not JSON: {error}") from error
    if not isinstance(document, dict):
        raise UnreadableEvent("not a JSON object")
    return document


def _as_current(
    cls: type[_Event], document: dict[str, Any], first_error: ValidationError
) -> dict[str, Any]:
    """`document` as the current version of `cls`: upcast from an older version, fields added
    by newer code dropped. NewerEvent for a version newer than this code's; UnreadableEvent when
    it still is not a valid event."""
    current = cls.model_fields["version"].default
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise UnreadableEvent(_describe(first_error))
    if version > current:
        raise NewerEvent(document["type"], version, current)
    while version < current:
        upcast = cls.upcasters.get(version)
        if upcast is None:
            raise UnreadableEvent(f"{document['type']} v{version} can no longer be read")
        version += 1
        document = {**upcast(document), "version": version}
    known = {k: v for k, v in document.items() if k in cls.model_fields}
    try:
        cls.model_validate(known)
    except ValidationError as error:
        raise UnreadableEvent(_describe(error)) from error
    return known


def _describe(error: ValidationError) -> str:
    """A short reason for the dead-letter topic, without echoing a huge payload."""
    problems = [
        f"{'.'.join(str(p) for p in e['loc']) or 'event'}: {e['msg']}" for e in error.errors()[:3]
    ]
    return "; ".join(problems)
