"""What the calculator does with one JobRequested: plain functions, dependencies passed in."""

import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

from services.shared.events import (
    DIGITS_PER_CHUNK,
    DigitsStored,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobRequested,
    JobStarted,
)

log = logging.getLogger(__name__)


class ComputeError(RuntimeError):
    """The digit engine could not produce the digits (refused, crashed, or out of memory)."""


@dataclass(frozen=True)
class CalculatorDeps:
    publish_job_event: Callable[[JobEvent], Awaitable[None]]
    publish_digits: Callable[[DigitsStored], Awaitable[None]]
    # How many leading decimals the log already holds (never more than it really holds).
    stored_digits: Callable[[int], Awaitable[int]]
    compute_decimals: Callable[[int], Awaitable[str]]
    worker: str


def chunks_to_store(decimals: str, already_stored: int) -> Iterator[DigitsStored]:
    """The chunks that extend the stored prefix to all of `decimals`.

    The chunk holding the end of the stored prefix is published again, whole, so every chunk
    in the log is either full or the longest ever computed.
    """
    first_chunk = already_stored // DIGITS_PER_CHUNK
    for start in range(first_chunk * DIGITS_PER_CHUNK, len(decimals), DIGITS_PER_CHUNK):
        yield DigitsStored(
            chunk_index=start // DIGITS_PER_CHUNK, digits=decimals[start : start + DIGITS_PER_CHUNK]
        )


async def handle_job_requested(event: JobRequested, deps: CalculatorDeps) -> None:
    job = {"job_id": event.job_id, "num": event.num}
    await deps.publish_job_event(JobStarted(job_id=event.job_id, worker=deps.worker))
    stored = await deps.stored_digits(event.num)
    if event.num <= stored:
        await deps.publish_job_event(
            JobCompleted(
                job_id=event.job_id, num=event.num, digits_source="stored", compute_seconds=0
            )
        )
        log.info("job served from stored digits", extra=job)
        return
    log.info("computing digits", extra={**job, "stored_digits": stored})
    started = time.perf_counter()
    try:
        decimals = await deps.compute_decimals(event.num)
    except ComputeError as error:
        await deps.publish_job_event(JobFailed(job_id=event.job_id, error=str(error)))
        log.error("job failed", extra={**job, "error": str(error)})
        return
    compute_seconds = time.perf_counter() - started
    for chunk in chunks_to_store(decimals, stored):
        await deps.publish_digits(chunk)
    await deps.publish_job_event(
        JobCompleted(
            job_id=event.job_id,
            num=event.num,
            digits_source="computed",
            compute_seconds=round(compute_seconds, 6),
        )
    )
    log.info("job computed", extra={**job, "compute_seconds": round(compute_seconds, 3)})
