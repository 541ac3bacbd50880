"""Submitting a job and reading its status: the API's handlers, with dependencies passed in."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from services.api.errors import ApiError
from services.api.job_ids import is_job_id, new_job_id
from services.shared.events import JobRequested
from services.shared.view import JobView, ViewReader

log = logging.getLogger(__name__)

# Publishes an event and returns the (partition, offset) the broker acknowledged.
PublishRequest = Callable[[JobRequested], Awaitable[tuple[int, int]]]


async def submit_job(
    num: int,
    publish: PublishRequest,
    view: ViewReader,
    events_topic: str,
    projection_wait_seconds: float,
) -> str:
    job_id = new_job_id()
    partition, offset = await publish(JobRequested(job_id=job_id, num=num))
    log.info("job requested", extra={"job_id": job_id, "num": num, "partition": partition})
    # Read-your-writes: answer once the view shows the job, so a GET right after never 404s.
    if not await _wait_for_view(view, events_topic, partition, offset, projection_wait_seconds):
        log.warning("view is behind; answering anyway", extra={"job_id": job_id})
    return job_id


async def _wait_for_view(
    view: ViewReader, topic: str, partition: int, offset: int, timeout: float
) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    delay = 0.001
    while view.position(topic, partition) <= offset:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(delay)
        delay = min(delay * 2, 0.05)
    return True


def job_status(job_id: str, view: ViewReader) -> dict[str, Any]:
    job = find_job(job_id, view)
    seen = job.as_seen_with(view.stored_digits())
    duration = (
        (seen.finished_at - seen.requested_at).total_seconds()
        if seen.finished_at and seen.status in ("complete", "failed")
        else None
    )
    return {
        "success": True,
        "job_id": seen.job_id,
        "num": seen.num,
        "status": seen.status,
        "requested_at": seen.requested_at,
        "started_at": seen.started_at,
        "finished_at": seen.finished_at if duration is not None else None,
        "duration_seconds": duration,
        "digits_source": seen.digits_source if duration is not None else None,
        "error": seen.error,
    }


def find_job(job_id: str, view: ViewReader) -> JobView:
    job = view.get_job(job_id) if is_job_id(job_id) else None
    if job is None:
        raise ApiError(404, f"no job with id {job_id[:80]!r}")
    return job
