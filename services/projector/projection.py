"""The projection: a fold from one job's events to its view. Pure, so tests run it on a list.

Kafka delivers at least once, so every event may arrive again: applying it twice changes nothing,
and a job that reached a terminal status never moves back.
"""

from collections.abc import Callable, Mapping
from functools import reduce
from typing import Any, TypeVar

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


def _requested(job: JobView | None, event: JobRequested) -> JobView | None:
    if job is not None:
        return job  # the first request of a job id is the job (a repeated key finds it)
    return JobView.requested(event)


def _started(job: JobView, event: JobStarted) -> dict[str, object]:
    # Also a restart after a calculator died. Its engine may resume from checkpoints, so the
    # progress shown stays where it was until the new run reports where it stands (which can
    # be less: work done after the last checkpoint, or none on a host without them).
    at = event.occurred_at
    progress = job.progress if job.status == "in_progress" else 0.0
    return {"status": "in_progress", "started_at": at, "worker": event.worker,
            "progress": progress, "eta_seconds": None, "progress_at": at}  # fmt: skip


def _progressed(job: JobView, event: JobProgressed) -> dict[str, object]:
    at = event.occurred_at
    if job.progress_at is not None and at < job.progress_at:
        return {}  # a late duplicate
    return {"status": "in_progress", "progress": event.progress,
            "eta_seconds": event.eta_seconds, "progress_at": at}  # fmt: skip


def _completed(job: JobView, event: JobCompleted) -> dict[str, object]:
    # A job served from stored digits has no JobStarted: it starts as it completes.
    at = event.occurred_at
    return {"status": "complete", "finished_at": at, "progress": 1.0, "eta_seconds": 0.0,
            "started_at": job.started_at or at, "worker": event.worker or job.worker,
            "digits_source": event.digits_source,
            "compute_seconds": event.compute_seconds}  # fmt: skip


def _failed(job: JobView, event: JobFailed) -> dict[str, object]:
    return {"status": "failed", "finished_at": event.occurred_at, "error": event.error}


def _cancelled(job: JobView, event: JobCancelled) -> dict[str, object]:
    return {"status": "cancelled", "finished_at": event.occurred_at, "eta_seconds": None}


_E = TypeVar("_E", bound=JobEvent)
# What an event changes in a job that exists and is not finished.
_Changes = Callable[[JobView, _E], dict[str, object]]

# Every job event the fold applies: the one that creates a job, and what the others change.
CREATES: Mapping[type[JobEvent], Callable[[JobView | None, Any], JobView | None]] = {
    JobRequested: _requested,
}
CHANGES: Mapping[type[JobEvent], _Changes[Any]] = {
    JobStarted: _started,
    JobProgressed: _progressed,
    JobCompleted: _completed,
    JobFailed: _failed,
    JobCancelled: _cancelled,
}


def apply_event(job: JobView | None, event: JobEvent) -> JobView | None:
    if (create := CREATES.get(type(event))) is not None:
        return create(job, event)
    if job is None or job.status in TERMINAL_STATUSES:
        # Nothing to attach it to (a job never requested), or the job is finished for good.
        return job
    return job.model_copy(update=CHANGES[type(event)](job, event))


def fold(events: list[JobEvent], job: JobView | None = None) -> JobView | None:
    return reduce(apply_event, events, job)
