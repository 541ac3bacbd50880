"""What the calculator does with one JobRequested: plain functions, dependencies passed in."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal, Protocol

from opentelemetry.trace import SpanKind

from services.calculator.metrics import DIGITS_COMPUTED, JOBS_FINISHED, JOBS_FROM_STORED
from services.calculator.progress import CostModel, ProgressTracker
from services.shared import tracing
from services.shared.events import (
    DIGITS_PER_CHUNK,
    DigitsStored,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgressed,
    JobRequested,
    JobStarted,
)

log = logging.getLogger(__name__)


class ComputeError(RuntimeError):
    """The digit engine could not produce the digits (refused, crashed, or out of memory)."""


class PublishJobEvents(Protocol):
    """Publishes the events in order and returns once the broker has acknowledged them all."""

    async def __call__(self, *events: JobEvent) -> None: ...


@dataclass(frozen=True)
class CalculatorDeps:
    publish_job_events: PublishJobEvents
    publish_digits: Callable[[DigitsStored], Awaitable[None]]
    # How many leading decimals the log holds: at least the given figure if it has that many.
    stored_digits: Callable[[int], Awaitable[int]]
    # Computes decimals, calling back with the engine's progress (0..1).
    compute_decimals: Callable[[int, Callable[[float], None]], Awaitable[str]]
    worker: str
    cost_model: CostModel
    progress_interval_seconds: float = 3.0
    # Held while computing so many decimals: where large computations wait their turn.
    compute_slot: Callable[[int], AbstractAsyncContextManager[None]] = lambda _: nullcontext()
    # Removes the checkpoints of the computation for so many decimals: its job has ended.
    discard_checkpoints: Callable[[int], None] = lambda _: None


def whole_chunks(num: int) -> int:
    """Computations are rounded up to whole chunks: every chunk in the log is then complete,
    identical whoever computed it, and small jobs after the first need no computing at all."""
    return -(-num // DIGITS_PER_CHUNK) * DIGITS_PER_CHUNK


def chunks_to_store(decimals: str, already_stored: int) -> Iterator[DigitsStored]:
    """The chunks of `decimals` (a whole number of chunks) beyond the stored prefix."""
    first = already_stored - already_stored % DIGITS_PER_CHUNK
    for start in range(first, len(decimals), DIGITS_PER_CHUNK):
        yield DigitsStored(
            chunk_index=start // DIGITS_PER_CHUNK, digits=decimals[start : start + DIGITS_PER_CHUNK]
        )


async def serve_from_stored(requests: Sequence[JobRequested], deps: CalculatorDeps) -> None:
    """Complete jobs that the stored digits already answer: a JobCompleted each (no JobStarted:
    there is nothing to wait for), published together, so a burst costs a request or two."""
    await deps.publish_job_events(
        *(_completed(event, "stored", 0.0, deps.worker) for event in requests)
    )
    JOBS_FROM_STORED.inc(len(requests))
    JOBS_FINISHED.labels("complete", "stored").inc(len(requests))
    if len(requests) == 1:
        log.info("job served from stored digits", extra=_job(requests[0]))
    else:  # one line for a burst, naming each job
        job_ids = [event.job_id for event in requests]
        log.info("jobs served from stored digits", extra={"job_ids": job_ids})


def _job(event: JobRequested) -> dict[str, object]:
    return {"job_id": event.job_id, "num": event.num}


async def handle_job_requested(event: JobRequested, deps: CalculatorDeps) -> None:
    if event.num <= await deps.stored_digits(event.num):
        await serve_from_stored([event], deps)
        return
    target = whole_chunks(event.num)
    # From the queue for the large lane to the outcome; the job's events and digits carry it.
    with tracing.span("compute", event.job_id, SpanKind.CONSUMER, num=event.num, target=target):
        await _compute(event, target, deps)


async def _compute(event: JobRequested, target: int, deps: CalculatorDeps) -> None:
    job = _job(event)
    started_event = JobStarted(job_id=event.job_id, worker=deps.worker)
    async with deps.compute_slot(target):  # the job stays queued while it waits here
        await deps.publish_job_events(started_event)
        log.info("computing digits", extra={**job, "computing": target})
        started = time.perf_counter()
        try:
            decimals, started_from = await _compute_with_progress(event, target, deps)
        except ComputeError as error:
            await deps.publish_job_events(JobFailed(job_id=event.job_id, error=str(error)))
            deps.discard_checkpoints(target)
            JOBS_FINISHED.labels("failed", "none").inc()
            log.error("job failed", extra={**job, "error": str(error)})
            return
    compute_seconds = time.perf_counter() - started
    if started_from == 0:  # a run resumed or extending a stored state is not the full work
        deps.cost_model.learn(target, compute_seconds)
    DIGITS_COMPUTED.inc(target)
    # Another job may have stored some of these meanwhile: publish only what is still new.
    stored = min(await deps.stored_digits(target), target)
    for chunk in chunks_to_store(decimals, stored):
        await deps.publish_digits(chunk)
    await deps.publish_job_events(_completed(event, "computed", compute_seconds, deps.worker))
    deps.discard_checkpoints(target)
    JOBS_FINISHED.labels("complete", "computed").inc()
    log.info("job computed", extra={**job, "compute_seconds": round(compute_seconds, 3)})


def _completed(
    event: JobRequested,
    source: Literal["computed", "stored"],
    compute_seconds: float,
    worker: str,
) -> JobCompleted:
    return JobCompleted(
        job_id=event.job_id,
        num=event.num,
        digits_source=source,
        compute_seconds=round(compute_seconds, 6),
        worker=worker,
    )


async def _compute_with_progress(
    event: JobRequested, num: int, deps: CalculatorDeps
) -> tuple[str, float]:
    """The decimals, and the share of the work the engine found done when it started."""

    async def publish(progress: float, eta_seconds: float) -> None:
        await deps.publish_job_events(
            JobProgressed(job_id=event.job_id, progress=progress, eta_seconds=eta_seconds)
        )

    tracker = ProgressTracker(num, deps.cost_model, publish, deps.progress_interval_seconds)
    computing: asyncio.Future[str] = asyncio.ensure_future(
        deps.compute_decimals(num, tracker.engine_reported)
    )
    try:
        while True:
            done, _ = await asyncio.wait({computing}, timeout=0.25)
            if done:
                return computing.result(), tracker.started_from
            await tracker.tick()
    finally:
        if not computing.done():
            computing.cancel()
            await asyncio.gather(computing, return_exceptions=True)
