"""A job's status as clients see it, rendered once to JSON bytes; a finished job's is kept.

A finished job never changes, so its rendered status is kept in memory (bounded) and served
without reading the view, with an ETag so a poller that already has it gets a 304.
"""

import hashlib
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from fastapi.responses import Response
from pydantic import BaseModel, TypeAdapter

from services.shared.view import TERMINAL_STATUSES, JobStatus, JobView
from services.shared.web import etag_matches


class JobStatusBody(BaseModel):
    """What GET /pi_job/{id} answers (and each event of GET /pi_job/{id}/events carries)."""

    success: Literal[True] = True
    job_id: str
    num: int
    radix: int  # of the digits: 10, or 16 for a hexadecimal job
    status: JobStatus
    progress: float | None
    eta_seconds: float | None
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_seconds: float | None
    digits_source: str | None
    worker: str | None  # only with ?include=worker
    error: str | None


class JobAccepted(BaseModel):
    """What POST /pi_job answers."""

    success: Literal[True] = True
    job_id: str


class JobListBody(BaseModel):
    """What GET /pi_jobs answers: a page of jobs, newest first."""

    success: Literal[True] = True
    jobs: list[JobStatusBody]
    next_cursor: str | None


_STATUS_JSON = TypeAdapter(JobStatusBody)
_LIST_JSON = TypeAdapter(JobListBody)


def status_body(job: JobView, stored_digits: int, with_worker: bool = False) -> JobStatusBody:
    """`stored_digits` (of the job's radix) matters only to a complete job: it is complete once
    its digits are in.
    The worker (a calculator's host and pid) is told only `with_worker`."""
    seen = job.as_seen_with(stored_digits)
    finished = seen.status in TERMINAL_STATUSES
    running = seen.status == "in_progress"
    return JobStatusBody(
        job_id=seen.job_id,
        num=seen.num,
        radix=seen.radix,
        status=seen.status,
        progress=seen.progress if running or seen.status == "complete" else None,
        eta_seconds=seen.eta_seconds if running else None,
        requested_at=seen.requested_at,
        started_at=seen.started_at,
        finished_at=seen.finished_at if finished else None,
        duration_seconds=(
            (seen.finished_at - seen.requested_at).total_seconds()
            if finished and seen.finished_at
            else None
        ),
        digits_source=seen.digits_source if seen.status == "complete" else None,
        worker=seen.worker if with_worker else None,
        error=seen.error,
    )


def status_json(body: JobStatusBody) -> bytes:
    return _STATUS_JSON.dump_json(body)


def list_json(body: JobListBody) -> bytes:
    return _LIST_JSON.dump_json(body)


@dataclass(frozen=True)
class RenderedStatus:
    body: bytes
    etag: str
    finished: bool
    owner: str | None

    @classmethod
    def of(cls, status: JobStatusBody, owner: str | None) -> "RenderedStatus":
        body = status_json(status)
        etag = f'"{hashlib.blake2b(body, digest_size=16).hexdigest()}"'
        return cls(body, etag, status.status in TERMINAL_STATUSES, owner)

    def response(self, if_none_match: str | None) -> Response:
        headers = {
            "ETag": self.etag,
            # A finished job's status is final; anything else must be asked again.
            "Cache-Control": "public, max-age=86400" if self.finished else "no-cache",
        }
        if etag_matches(if_none_match, self.etag):
            return Response(status_code=304, headers=headers)
        return Response(self.body, media_type="application/json", headers=headers)


class FinishedStatuses:
    """The rendered statuses of the most recently read finished jobs."""

    def __init__(self, capacity: int = 20_000) -> None:
        self._capacity = capacity
        self._rendered: OrderedDict[str, RenderedStatus] = OrderedDict()

    def get(self, job_id: str) -> RenderedStatus | None:
        rendered = self._rendered.get(job_id)
        if rendered is not None:
            self._rendered.move_to_end(job_id)
        return rendered

    def keep(self, job_id: str, rendered: RenderedStatus) -> None:
        if not rendered.finished:
            return
        self._rendered[job_id] = rendered
        if len(self._rendered) > self._capacity:
            self._rendered.popitem(last=False)
