"""Submitting, cancelling and reading jobs: the API's handlers, with dependencies passed in."""

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.api.accepted import ViewWithAccepted
from services.shared.events import JobCancelled, JobEvent, JobRequested
from services.shared.job_ids import idempotent_job_id, new_job_id
from services.shared.view import TERMINAL_STATUSES, JobView, ViewReader
from services.shared.web import ApiError, find_job

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobCommands:
    # Publishes an event and returns the (partition, offset) the broker acknowledged.
    publish: Callable[[JobEvent], Awaitable[tuple[int, int]]]
    view: ViewWithAccepted
    events_topic: str
    projection_wait_seconds: float

    async def publish_and_wait(self, event: JobEvent) -> None:
        """Read-your-writes: return once the view has applied the event (or the wait is over)."""
        partition, offset = await self.publish(event)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.projection_wait_seconds
        delay = 0.001
        while await asyncio.to_thread(self.view.position, self.events_topic, partition) <= offset:
            if loop.time() >= deadline:
                log.warning("view is behind; answering anyway", extra={"job_id": event.job_id})
                return
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.05)


async def submit_job(num: int, idempotency_key: str | None, commands: JobCommands) -> str:
    job_id = new_job_id() if idempotency_key is None else idempotent_job_id(idempotency_key)
    # The view is read in a thread: a PostgreSQL view is a network round trip away.
    view = commands.view
    if idempotency_key is None or await asyncio.to_thread(view.get_job, job_id) is None:
        requested = JobRequested(job_id=job_id, num=num, idempotency_key=idempotency_key)
        await commands.publish_and_wait(requested)
        view.remember(requested)
        log.info("job requested", extra={"job_id": job_id, "num": num})
    if idempotency_key is not None:
        # Only the first request with a key creates the job (the projection keeps the first).
        job = await asyncio.to_thread(view.get_job, job_id)
        if job is not None and job.num != num:
            raise ApiError(409, f"Idempotency-Key already used for a job with num={job.num}")
    return job_id


async def cancel_job(job_id: str, commands: JobCommands) -> dict[str, Any]:
    job = await asyncio.to_thread(find_job, job_id, commands.view)
    if job.status in TERMINAL_STATUSES:
        raise ApiError(409, f"job {job_id} is already {job.status}: nothing to cancel")
    await commands.publish_and_wait(JobCancelled(job_id=job_id))
    job = await asyncio.to_thread(find_job, job_id, commands.view)
    if job.status != "cancelled":
        raise ApiError(409, f"job {job_id} is already {job.status}: nothing to cancel")
    log.info("job cancelled", extra={"job_id": job_id})
    return {"success": True, "job_id": job_id, "status": "cancelled"}


def job_status(job_id: str, view: ViewReader) -> dict[str, Any]:
    return status_body(find_job(job_id, view), view.stored_digits())


def status_body(job: JobView, stored_digits: int) -> dict[str, Any]:
    seen = job.as_seen_with(stored_digits)
    finished = seen.status in TERMINAL_STATUSES
    running = seen.status == "in_progress"
    return {
        "success": True,
        "job_id": seen.job_id,
        "num": seen.num,
        "status": seen.status,
        "progress": seen.progress if running or seen.status == "complete" else None,
        "eta_seconds": seen.eta_seconds if running else None,
        "requested_at": seen.requested_at,
        "started_at": seen.started_at,
        "finished_at": seen.finished_at if finished else None,
        "duration_seconds": (
            (seen.finished_at - seen.requested_at).total_seconds()
            if finished and seen.finished_at
            else None
        ),
        "digits_source": seen.digits_source if seen.status == "complete" else None,
        "worker": seen.worker,
        "error": seen.error,
    }
