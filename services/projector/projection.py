"""The projection: a fold from one job's events to its view. Pure, so tests run it on a list.

Kafka delivers at least once, so every event may arrive again: applying it twice changes nothing,
and a job that reached a terminal status never moves back.
"""

from functools import reduce
from typing import assert_never

from services.shared.events import JobCompleted, JobEvent, JobFailed, JobRequested, JobStarted
from services.shared.view import TERMINAL_STATUSES, JobView


def apply_event(job: JobView | None, event: JobEvent) -> JobView | None:
    if isinstance(event, JobRequested):
        if job is not None:
            return job
        return JobView(
            job_id=event.job_id, num=event.num, status="queued", requested_at=event.occurred_at
        )
    if job is None or job.status in TERMINAL_STATUSES:
        # Nothing to attach it to (a job never requested), or the job is finished for good.
        return job
    if isinstance(event, JobStarted):
        return job.model_copy(
            update={
                "status": "in_progress",
                "started_at": event.occurred_at,
                "worker": event.worker,
            }
        )
    if isinstance(event, JobCompleted):
        return job.model_copy(
            update={
                "status": "complete",
                "finished_at": event.occurred_at,
                "digits_source": event.digits_source,
                "compute_seconds": event.compute_seconds,
            }
        )
    if isinstance(event, JobFailed):
        return job.model_copy(
            update={"status": "failed", "finished_at": event.occurred_at, "error": event.error}
        )
    assert_never(event)


def fold(events: list[JobEvent], job: JobView | None = None) -> JobView | None:
    return reduce(apply_event, events, job)
