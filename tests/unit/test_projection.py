from datetime import UTC, datetime, timedelta

from services.projector.handler import LogRecord, decode_batch
from services.projector.projection import fold
from services.shared.events import (
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgressed,
    JobRequested,
    JobStarted,
    encode,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


requested = JobRequested(job_id="j1", num=12, occurred_at=at(0))
started = JobStarted(job_id="j1", worker="w1", occurred_at=at(1))
completed = JobCompleted(
    job_id="j1", num=12, digits_source="computed", compute_seconds=0.5, occurred_at=at(2)
)
failed = JobFailed(job_id="j1", error="boom", occurred_at=at(3))


def test_a_job_goes_queued_in_progress_complete() -> None:
    assert fold([requested]).status == "queued"  # type: ignore[union-attr]
    assert fold([requested, started]).status == "in_progress"  # type: ignore[union-attr]
    job = fold([requested, started, completed])
    assert job is not None
    assert (job.status, job.num, job.requested_at, job.finished_at) == (
        "complete",
        12,
        at(0),
        at(2),
    )
    assert job.digits_source == "computed"


def test_redelivered_events_change_nothing() -> None:
    once = fold([requested, started, completed])
    assert fold([requested, requested, started, started, completed, completed]) == once


def test_a_finished_job_never_moves_back() -> None:
    # A calculator that crashed after publishing may run the job again and say so.
    job = fold([requested, started, completed, started, failed])
    assert job is not None and job.status == "complete" and job.finished_at == at(2)
    job = fold([requested, failed, completed])
    assert job is not None and job.status == "failed" and job.error == "boom"


def test_a_restarted_job_shows_its_progress_until_the_new_run_reports() -> None:
    def progressed(progress: float, seconds: float) -> JobProgressed:
        return JobProgressed(job_id="j1", progress=progress, eta_seconds=9, occurred_at=at(seconds))

    restarted = JobStarted(job_id="j1", worker="w2", occurred_at=at(10))
    before_the_crash: list[JobEvent] = [requested, started, progressed(0.6, 5)]

    job = fold([*before_the_crash, restarted])
    assert job is not None
    assert (job.status, job.worker, job.progress, job.eta_seconds) == (
        "in_progress",
        "w2",
        0.6,
        None,
    )
    # The resumed run reports where its checkpoints left it; the dead run's late report is stale.
    job = fold([*before_the_crash, restarted, progressed(0.55, 12), progressed(0.7, 8)])
    assert job is not None and (job.progress, job.eta_seconds) == (0.55, 9)
    # A first start begins at zero, whatever a queued job held.
    job = fold([requested, started])
    assert job is not None and (job.progress, job.eta_seconds) == (0.0, None)


def test_events_of_a_job_never_requested_are_ignored() -> None:
    assert fold([started, completed]) is None


def test_a_completed_job_is_seen_in_progress_until_its_digits_are_in_the_view() -> None:
    job = fold([requested, started, completed])
    assert job is not None
    assert job.as_seen_with(stored_digits=11).status == "in_progress"
    assert job.as_seen_with(stored_digits=12).status == "complete"


def test_a_job_served_from_stored_digits_completes_in_one_event() -> None:
    served = JobCompleted(
        job_id="j1",
        num=12,
        digits_source="stored",
        compute_seconds=0,
        worker="w2",
        occurred_at=at(1),
    )
    job = fold([requested, served])
    assert job is not None
    assert (job.status, job.started_at, job.finished_at, job.worker) == (
        "complete",
        at(1),
        at(1),
        "w2",
    )
    # After a JobStarted (a computation), the start it recorded stays.
    job = fold([requested, started, completed])
    assert job is not None and (job.started_at, job.worker) == (at(1), "w1")


def test_a_batch_stops_a_partition_at_an_event_too_new_to_read() -> None:
    def record(partition: int, offset: int, value: bytes) -> LogRecord:
        return LogRecord("events", partition, offset, None, value)

    newer = b'{"type": "JobRequested", "version": 5, "job_id": "j9", "num": 1}'
    batch = decode_batch(
        [
            record(0, 10, encode(requested)),
            record(0, 11, newer),
            record(0, 12, encode(started)),  # after the held event: not read now
            record(1, 4, encode(completed)),
            record(1, 5, b"not an event"),
        ],
        digits_topic="digits",
    )
    assert batch.job_events == [requested, completed]
    assert batch.positions == {("events", 0): 11, ("events", 1): 6}
    assert list(batch.held) == [("events", 0)] and batch.held[("events", 0)][0] == 11
    assert [r.offset for r, _ in batch.unreadable] == [5]  # bad, not new: dead-lettered
