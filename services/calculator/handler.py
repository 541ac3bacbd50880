"""What the calculator does with one JobRequested: plain functions, dependencies passed in."""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager, nullcontext
from dataclasses import dataclass
from typing import Literal, Protocol

from opentelemetry.trace import SpanKind

from services.calculator.hex_digits import decimals_for_hex
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
    Radix,
)
from services.shared.radix import decimals_needed

log = logging.getLogger(__name__)


class ComputeError(RuntimeError):
    """The digit engine could not produce the digits (refused, crashed, or out of memory)."""


# Takes the computed digits chunk by chunk, in order, as the engine writes them out:
# (chunk index, its DIGITS_PER_CHUNK digits). The calculator never holds them all.
TakeChunk = Callable[[int, str], Awaitable[None]]


class PublishJobEvents(Protocol):
    """Publishes the events in order and returns once the broker has acknowledged them all."""

    async def __call__(self, *events: JobEvent) -> None: ...


@dataclass(frozen=True)
class CalculatorDeps:
    publish_job_events: PublishJobEvents
    publish_digits: Callable[[DigitsStored], Awaitable[None]]
    # How many leading digits of a radix the log holds: at least the given figure if it has
    # that many.
    stored_digits: Callable[[int, Radix], Awaitable[int]]
    # Computes digits of a radix (a whole number of chunks), calling back with the engine's
    # progress (0..1), then passing the digits on chunk by chunk.
    compute_digits: Callable[[int, Radix, Callable[[float], None], TakeChunk], Awaitable[None]]
    worker: str
    cost_model: CostModel
    progress_interval_seconds: float = 3.0
    # Held while computing so many decimals: where large computations wait their turn.
    compute_slot: Callable[[int], AbstractAsyncContextManager[None]] = lambda _: nullcontext()
    # Removes the checkpoints of the computation for so many decimals: its job has ended.
    discard_checkpoints: Callable[[int], None] = lambda _: None


def engine_decimals(num: int, radix: Radix) -> int:
    """How many decimals the engine computes for `num` digits of `radix` (its checkpoints are
    those of that computation)."""
    return num if radix == 10 else decimals_for_hex(num)


def whole_chunks(num: int) -> int:
    """Computations are rounded up to whole chunks: every chunk in the log is then complete,
    identical whoever computed it, and small jobs after the first need no computing at all."""
    return -(-num // DIGITS_PER_CHUNK) * DIGITS_PER_CHUNK


class ChunkPublisher:
    """Publishes the computed chunks that the log does not hold yet, as they arrive."""

    def __init__(self, target: int, radix: Radix, deps: CalculatorDeps) -> None:
        self._target = target
        self._radix = radix
        self._deps = deps
        self._stored: int | None = None
        self.first_chunk_at: float | None = None
        self.published = 0

    async def take(self, chunk_index: int, digits: str) -> None:
        if self._stored is None:  # asked once the digits exist: another job may have stored some
            self.first_chunk_at = time.perf_counter()
            stored = await self._deps.stored_digits(self._target, self._radix)
            self._stored = min(stored, self._target)
        if (chunk_index + 1) * DIGITS_PER_CHUNK > self._stored:
            chunk = DigitsStored(radix=self._radix, chunk_index=chunk_index, digits=digits)
            await self._deps.publish_digits(chunk)
            self.published += 1


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
    return {"job_id": event.job_id, "num": event.num, "radix": event.radix}


async def handle_job_requested(event: JobRequested, deps: CalculatorDeps) -> None:
    if event.num <= await deps.stored_digits(event.num, event.radix):
        await serve_from_stored([event], deps)
        return
    target = whole_chunks(event.num)
    # From the queue for the large lane to the outcome; the job's events and digits carry it.
    with tracing.span("compute", event.job_id, SpanKind.CONSUMER, num=event.num, target=target):
        await _compute(event, target, deps)


async def _compute(event: JobRequested, target: int, deps: CalculatorDeps) -> None:
    job = _job(event)
    started_event = JobStarted(job_id=event.job_id, worker=deps.worker)
    cost = decimals_needed(target, event.radix)  # what the engine computes, in decimals
    async with deps.compute_slot(cost):  # the job stays queued while it waits here
        await deps.publish_job_events(started_event)
        log.info("computing digits", extra={**job, "computing": target})
        started = time.perf_counter()
        chunks = ChunkPublisher(target, event.radix, deps)
        try:
            started_from = await _compute_with_progress(event, target, deps, chunks.take)
        except ComputeError as error:
            await deps.publish_job_events(JobFailed(job_id=event.job_id, error=str(error)))
            deps.discard_checkpoints(engine_decimals(target, event.radix))
            JOBS_FINISHED.labels("failed", "none").inc()
            log.error("job failed", extra={**job, "error": str(error)})
            return
    # The computing ends where the digits start coming out; publishing them is not computing.
    compute_seconds = (chunks.first_chunk_at or time.perf_counter()) - started
    if started_from == 0:  # a run resumed or extending a stored state is not the full work
        deps.cost_model.learn(cost, compute_seconds)
    DIGITS_COMPUTED.inc(target)
    await deps.publish_job_events(_completed(event, "computed", compute_seconds, deps.worker))
    deps.discard_checkpoints(engine_decimals(target, event.radix))
    JOBS_FINISHED.labels("complete", "computed").inc()
    log.info(
        "job computed",
        extra={
            **job,
            "compute_seconds": round(compute_seconds, 3),
            "chunks_published": chunks.published,
            "seconds": round(time.perf_counter() - started, 3),
        },
    )


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
    event: JobRequested, num: int, deps: CalculatorDeps, take_chunk: TakeChunk
) -> float:
    """Computes, passing the digits on; returns the share of the work the engine found done
    when it started."""

    async def publish(progress: float, eta_seconds: float) -> None:
        await deps.publish_job_events(
            JobProgressed(job_id=event.job_id, progress=progress, eta_seconds=eta_seconds)
        )

    cost = decimals_needed(num, event.radix)
    tracker = ProgressTracker(cost, deps.cost_model, publish, deps.progress_interval_seconds)
    computing: asyncio.Future[None] = asyncio.ensure_future(
        deps.compute_digits(num, event.radix, tracker.engine_reported, take_chunk)
    )
    try:
        while True:
            done, _ = await asyncio.wait({computing}, timeout=0.25)
            if done:
                computing.result()
                return tracker.started_from
            await tracker.tick()
    finally:
        if not computing.done():
            computing.cancel()
            await asyncio.gather(computing, return_exceptions=True)
