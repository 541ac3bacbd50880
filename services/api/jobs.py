"""Submitting, cancelling and reading jobs: the API's handlers, with dependencies passed in.

Read-your-writes: a POST answers as soon as the broker has acknowledged its event. A read that
does not find the job in the view (it may be on its way there) waits until the view has caught
up with the log as it ended when the read began, then looks again. So a GET right after a POST
finds the job on any API process, while the many reads of jobs the view already has wait for
nothing.
"""

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from services.api.accepted import ViewWithAccepted
from services.api.admission import Admission
from services.api.callers import Caller
from services.api.log_ends import LogEnd
from services.api.statuses import FinishedStatuses, RenderedStatus, status_body
from services.api.submission import Submission
from services.api.watcher import ViewWatcher
from services.shared.events import JobCancelled, JobEvent, JobRequested
from services.shared.job_ids import idempotent_job_id, is_job_id, new_job_id
from services.shared.kafka import partition_for_key
from services.shared.view import TERMINAL_STATUSES, JobView, read_view
from services.shared.web import ApiError, job_not_found

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Jobs:
    # Publishes an event and returns the (partition, offset) the broker acknowledged.
    publish: Callable[[JobEvent], Awaitable[tuple[int, int]]]
    view: ViewWithAccepted
    watcher: ViewWatcher
    # Where the events topic ends now (a query sent after the call).
    log_end: Callable[[], Awaitable[LogEnd]]
    events_topic: str
    catch_up_seconds: float

    async def publish_and_wait(self, event: JobEvent) -> None:
        """Publish, then wait until the view has applied the event (or the wait is over)."""
        partition, offset = await self.publish(event)
        if not await self.watcher.wait_past(
            self.events_topic, partition, offset, self.catch_up_seconds
        ):
            log.warning("view is behind; answering anyway", extra={"job_id": event.job_id})

    async def catch_up(self, job_id: str | None = None) -> None:
        """Wait until the view shows every write acknowledged before now: to `job_id`'s
        partition, or to all of them."""
        try:
            ends = await self.log_end()
        except Exception as error:  # the broker is unreachable: read what the view has
            log.warning("cannot read where the log ends", extra={"error": repr(error)})
            return
        if job_id is not None:
            partition = partition_for_key(job_id, [p for _, p in ends])
            ends = {(self.events_topic, partition): ends[(self.events_topic, partition)]}
        reached = await self.watcher.wait_until(ends, self.catch_up_seconds)
        if not reached:
            log.warning("view is behind; reading it anyway", extra={"job_id": job_id})

    async def get(self, job_id: str) -> JobView | None:
        """The job, seeing every write acknowledged before this call."""
        job = await read_view(self.view, self.view.get_job, job_id)
        if job is None and is_job_id(job_id):
            await self.catch_up(job_id)
            job = await read_view(self.view, self.view.get_job, job_id)
        return job

    async def find(self, job_id: str, caller: Caller) -> JobView:
        """As get(), or a 404 that says so (also for a job the caller may not see)."""
        job = await self.get(job_id)
        if job is None or not caller.may_see(job.owner):
            raise job_not_found(job_id)
        return job


async def submit_job(
    asked: Submission,
    idempotency_key: str | None,
    caller: Caller,
    jobs: Jobs,
    admission: Admission,
) -> str:
    num, radix = asked
    if idempotency_key is None:
        job_id = new_job_id()
    else:
        # With API keys, each owner's keys are its own.
        job_id = idempotent_job_id(idempotency_key, caller.owner if caller.keyed else None)
        if (job := await jobs.get(job_id)) is not None:
            return _same_job(job, asked)
    async with admission.admit(caller.owner, num, radix) as costly:
        requested = JobRequested(
            job_id=job_id, num=num, idempotency_key=idempotency_key, owner=caller.owner, radix=radix
        )
        # A costly job must be in the view before the next costly one is weighed; a repeated
        # key must find its job.
        if costly or idempotency_key is not None:
            await jobs.publish_and_wait(requested)
        else:
            await jobs.publish(requested)
        jobs.view.remember(requested)
    log.info("job requested", extra={"job_id": job_id, "num": num, "radix": radix})
    # Only the first request with a key creates the job (the projection keeps the first).
    if idempotency_key is None:
        return job_id
    job = await read_view(jobs.view, jobs.view.get_job, job_id)
    return job_id if job is None else _same_job(job, asked)


def _same_job(job: JobView, asked: Submission) -> str:
    if (job.num, job.radix) != asked:
        radix = "" if job.radix == 10 else f", radix={job.radix}"
        raise ApiError(409, f"Idempotency-Key already used for a job with num={job.num}{radix}")
    return job.job_id


async def cancel_job(job_id: str, caller: Caller, jobs: Jobs) -> dict[str, Any]:
    job = await jobs.find(job_id, caller)
    if job.status in TERMINAL_STATUSES:
        raise ApiError(409, f"job {job_id} is already {job.status}: nothing to cancel")
    await jobs.publish_and_wait(JobCancelled(job_id=job_id))
    job = await jobs.find(job_id, caller)
    if job.status != "cancelled":
        raise ApiError(409, f"job {job_id} is already {job.status}: nothing to cancel")
    log.info("job cancelled", extra={"job_id": job_id})
    return {"success": True, "job_id": job_id, "status": "cancelled"}


async def current_status(
    job_id: str, caller: Caller, jobs: Jobs, finished: FinishedStatuses, with_worker: bool = False
) -> RenderedStatus:
    """The job's status, from memory once it is finished, else from the view. `with_worker`:
    with the calculator that ran it (host and pid: only when asked)."""
    rendered = None if with_worker else finished.get(job_id)
    if rendered is None:
        job = await jobs.find(job_id, caller)
        view = jobs.view
        # Only a complete job's status depends on the stored digits: spare the others the read.
        stored = (
            await read_view(view, view.stored_digits, job.radix) if job.status == "complete" else 0
        )
        rendered = RenderedStatus.of(status_body(job, stored, with_worker), job.owner)
        if not with_worker:
            finished.keep(job_id, rendered)
    elif not caller.may_see(rendered.owner):
        raise job_not_found(job_id)
    return rendered
