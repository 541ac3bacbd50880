"""Paging through jobs, newest first, with an opaque cursor."""

import base64
import binascii
import re

from services.api.statuses import JobListBody, status_body
from services.shared.view import JobStatus, JobView, ViewReader
from services.shared.web import ApiError

MAX_PAGE = 100


def list_jobs(
    view: ViewReader,
    status: JobStatus | None,
    limit: int,
    cursor: str | None,
    owner: str | None,
    with_worker: bool,
) -> JobListBody:
    """A page of every job, or of `owner`'s."""
    jobs = view.list_jobs(status, limit, _decode(cursor) if cursor else None, owner)
    stored = {radix: view.stored_digits(radix) for radix in {job.radix for job in jobs}}
    return JobListBody(
        jobs=[status_body(job, stored[job.radix], with_worker) for job in jobs],
        next_cursor=_encode(jobs[-1]) if len(jobs) == limit else None,
    )


def _encode(job: JobView) -> str:
    position = f"{job.requested_us}:{job.job_id}"
    return base64.urlsafe_b64encode(position.encode()).decode().rstrip("=")


_CURSOR = re.compile(r"^([0-9]{1,18}):([0-9a-f]{32})$")


def _decode(cursor: str) -> tuple[int, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        position = _CURSOR.fullmatch(base64.urlsafe_b64decode(padded).decode("ascii"))
    except (binascii.Error, UnicodeDecodeError, ValueError):
        position = None
    if position is None:
        raise ApiError(400, "cursor is not one this API returned: start without it")
    return int(position[1]), position[2]
