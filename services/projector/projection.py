"""The projection: a fold from one job's events to its view. Pure, so tests run it on a list.

Kafka delivers at least once, so every event may arrive again: applying it twice changes nothing,
and a job that reached a terminal status never moves back.
"""

from functools import reduce
from typing import assert_never

from services.shared.events import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgressed,
    JobRequested,
    JobStarted,
)
from services.shared.view import TERMINAL_STATUSES, JobView


def apply_event(job: JobView | None, event: JobEvent) -> JobView | None:
    if isinstance(event, JobRequested):
        if job is not None:
            return job
        return JobView(
            job_id=event.job_id,
            num=event.num,
            status="queued",
            requested_at=event.occurred_at,
            owner=event.owner,
            radix=event.radix,
        )
    if job is None or job.status in TERMINAL_STATUSES:
        # Nothing to attach it to (a job never requested), or the job is finished for good.
        return job
    return job.model_copy(update=_changes(job, event))


def _changes(job: JobView, event: JobEvent) -> dict[str, object]:
    at = event.occurred_at
    match event:
        case JobStarted():
            # Also a restart after a calculator died: progress begins again.
            return {"status": "in_progress", "started_at": at, "worker": event.worker,
                    "progress": 0.0, "eta_seconds": None, "progress_at": at}  # fmt: skip
        case JobProgressed():
            if job.progress_at is not None and at < job.progress_at:
                return {}  # a late duplicate
            return {"status": "in_progress", "progress": event.progress,
                    "eta_seconds": event.eta_seconds, "progress_at": at}  # fmt: skip
        case JobCompleted():
            # A job served from stored digits has no JobStarted: it starts as it completes.
            return {"status": "complete", "finished_at": at, "progress": 1.0, "eta_seconds": 0.0,
                    "started_at": job.started_at or at, "worker": event.worker or job.worker,
                    "digits_source": event.digits_source,
                    "compute_seconds": event.compute_seconds}  # fmt: skip
        case JobFailed():
            return {"status": "failed", "finished_at": at, "error": event.error}
        case JobCancelled():
            return {"status": "cancelled", "finished_at": at, "eta_seconds": None}
        case JobRequested():
            return {}
        case _:
            assert_never(event)


def fold(events: list[JobEvent], job: JobView | None = None) -> JobView | None:
    return reduce(apply_event, events, job)
