"""Runs jobs side by side, so small jobs never wait behind a large one.

Large computations take the large lane, one at a time (the engine already uses both cores);
everything else (jobs served from stored digits, small computations) starts at once.
"""

import asyncio
import dataclasses
import itertools
import logging
from collections.abc import Awaitable, Callable, Hashable
from contextlib import AbstractAsyncContextManager, nullcontext

from services.calculator.handler import (
    CalculatorDeps,
    handle_job_requested,
    serve_from_stored,
    whole_chunks,
)
from services.shared.events import JobRequested

log = logging.getLogger(__name__)

_RETRY_SECONDS = (0.5, 1, 2, 5, 10)


class JobRunner:
    def __init__(self, deps: CalculatorDeps, large_from_digits: int, max_in_flight: int) -> None:
        self._large_lane = asyncio.Semaphore(1)
        self._large_from = large_from_digits
        self._deps = dataclasses.replace(deps, compute_slot=self._compute_slot)
        self._slots = asyncio.Semaphore(max_in_flight)
        self._tasks: dict[asyncio.Task[None], tuple[str, Hashable]] = {}
        self._cancelled_jobs: set[asyncio.Task[None]] = set()

    async def start(
        self, event: JobRequested, partition: Hashable, on_done: Callable[[], None]
    ) -> None:
        """Start the job; waits only when `max_in_flight` jobs are already running."""
        await self._slots.acquire()
        task = asyncio.create_task(self._run(event))
        self._tasks[task] = (event.job_id, partition)

        def finished(_: asyncio.Task[None]) -> None:
            self._slots.release()
            del self._tasks[task]
            if task in self._cancelled_jobs:  # its computation is stopped: nobody resumes it
                self._cancelled_jobs.discard(task)
                self._deps.discard_checkpoints(whole_chunks(event.num))
            on_done()

        task.add_done_callback(finished)

    async def serve_from_stored(
        self, requests: list[JobRequested], partition: Hashable, on_done: Callable[[], None]
    ) -> None:
        """Jobs the stored digits answer, completed together by one task (no slot needed)."""
        task = asyncio.create_task(
            self._until_published(lambda: serve_from_stored(requests, self._deps), requests)
        )
        self._tasks[task] = ("", partition)

        def finished(_: asyncio.Task[None]) -> None:
            del self._tasks[task]
            on_done()

        task.add_done_callback(finished)

    def cancel_job(self, job_id: str) -> bool:
        """The job is cancelled (not merely stopped here, as on a rebalance or shutdown, when
        another calculator resumes it): its checkpoints go once its computation has stopped."""
        tasks = [task for task, (job, _) in self._tasks.items() if job == job_id]
        for task in tasks:
            task.cancel()
            self._cancelled_jobs.add(task)
        return bool(tasks)

    def cancel_partition(self, partition: Hashable) -> None:
        for task, (_, owner) in list(self._tasks.items()):
            if owner == partition:
                task.cancel()

    async def stop(self) -> None:
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _compute_slot(self, num: int) -> AbstractAsyncContextManager[None]:
        return self._large_lane if num >= self._large_from else nullcontext()

    async def _run(self, event: JobRequested) -> None:
        await self._until_published(lambda: handle_job_requested(event, self._deps), [event])

    async def _until_published(
        self, work: Callable[[], Awaitable[None]], requests: list[JobRequested]
    ) -> None:
        """Retries until the jobs' outcomes are published: a broker outage must not lose them."""
        first_job = {"job_id": requests[0].job_id, "jobs": len(requests)}
        for attempt in itertools.count():
            try:
                await work()
                return
            except asyncio.CancelledError:
                log.info("job stopped", extra=first_job)
                raise
            except Exception:
                delay = _RETRY_SECONDS[min(attempt, len(_RETRY_SECONDS) - 1)]
                log.exception("job attempt failed; retrying", extra=first_job)
                await asyncio.sleep(delay)
