"""What the calculator does with one JobRequested: plain functions, dependencies passed in."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal

from services.calculator.progress import CostModel, ProgressTracker
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
from services.shared.metrics import DIGITS_COMPUTED, JOBS_FINISHED, JOBS_FROM_STORED

log = logging.getLogger(__name__)


class ComputeError(RuntimeError):
    """The digit engine could not produce the digits (refused, crashed, or out of memory)."""


@dataclass(frozen=True)
class CalculatorDeps:
    publish_job_event: Callable[[JobEvent], Awaitable[None]]
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


async def handle_job_requested(event: JobRequested, deps: CalculatorDeps) -> None:
    job = {"job_id": event.job_id, "num": event.num}
    started_event = JobStarted(job_id=event.job_id, worker=deps.worker)
    if event.num <= await deps.stored_digits(event.num):
        await deps.publish_job_event(started_event)
        await _complete(event, deps, "stored", 0.0)
        JOBS_FROM_STORED.inc()
        JOBS_FINISHED.labels("complete", "stored").inc()
        log.info("job served from stored digits", extra=job)
        return
    target = whole_chunks(event.num)
    async with deps.compute_slot(target):  # the job stays queued while it waits here
        await deps.publish_job_event(started_event)
        log.info("computing digits", extra={**job, "computing": target})
        started = time.perf_counter()
        try:
            decimals = await _compute_with_progress(event, target, deps)
        except ComputeError as error:
            await deps.publish_job_event(JobFailed(job_id=event.job_id, error=str(error)))
            JOBS_FINISHED.labels("failed", "none").inc()
            log.error("job failed", extra={**job, "error": str(error)})
            return
    compute_seconds = time.perf_counter() - started
    deps.cost_model.learn(target, compute_seconds)
    DIGITS_COMPUTED.inc(target)
    # Another job may have stored some of these meanwhile: publish only what is still new.
    stored = min(await deps.stored_digits(target), target)
    for chunk in chunks_to_store(decimals, stored):
        await deps.publish_digits(chunk)
    await _complete(event, deps, "computed", compute_seconds)
    JOBS_FINISHED.labels("complete", "computed").inc()
    log.info("job computed", extra={**job, "compute_seconds": round(compute_seconds, 3)})


async def _complete(
    event: JobRequested,
    deps: CalculatorDeps,
    source: Literal["computed", "stored"],
    compute_seconds: float,
) -> None:
    await deps.publish_job_event(
        JobCompleted(
            job_id=event.job_id,
            num=event.num,
            digits_source=source,
            compute_seconds=round(compute_seconds, 6),
        )
    )


async def _compute_with_progress(event: JobRequested, num: int, deps: CalculatorDeps) -> str:
    async def publish(progress: float, eta_seconds: float) -> None:
        await deps.publish_job_event(
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
                return computing.result()
            await tracker.tick()
    finally:
        if not computing.done():
            computing.cancel()
            await asyncio.gather(computing, return_exceptions=True)
