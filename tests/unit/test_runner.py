"""Jobs side by side: a small job is never stuck behind a large computation."""

import asyncio
from collections.abc import Callable

from services.calculator.handler import CalculatorDeps, TakeChunk
from services.calculator.progress import CostModel
from services.calculator.runner import JobRunner
from services.shared.events import (
    DIGITS_PER_CHUNK,
    DigitsStored,
    JobCompleted,
    JobEvent,
    JobRequested,
    Radix,
)
from tests.support import wait_until_async

LARGE = 1_000_000


class FakeWorld:
    def __init__(self) -> None:
        self.events: list[JobEvent] = []
        self.release_large = asyncio.Event()
        self.computing: list[int] = []

    def deps(self) -> CalculatorDeps:
        async def publish_job_events(*events: JobEvent) -> None:
            self.events.extend(events)

        async def publish_digits(_: DigitsStored) -> None:
            pass

        async def stored_digits(_: int, __: Radix) -> int:
            return 0

        async def compute(
            num: int, _: Radix, __: Callable[[float], None], take_chunk: TakeChunk
        ) -> None:
            self.computing.append(num)
            try:
                if num >= LARGE:
                    await self.release_large.wait()
                for index in range(num // DIGITS_PER_CHUNK):
                    await take_chunk(index, "1" * DIGITS_PER_CHUNK)
            finally:
                self.computing.remove(num)

        return CalculatorDeps(
            publish_job_events, publish_digits, stored_digits, compute, "w", CostModel()
        )

    def completed(self, job_id: str) -> bool:
        return any(isinstance(e, JobCompleted) and e.job_id == job_id for e in self.events)


async def test_small_jobs_complete_while_a_large_one_computes() -> None:
    world = FakeWorld()
    runner = JobRunner(world.deps(), large_from_digits=LARGE, max_in_flight=8)
    done: list[str] = []
    await runner.start(JobRequested(job_id="big", num=LARGE), "p0", lambda: done.append("big"))
    await runner.start(JobRequested(job_id="small", num=10), "p0", lambda: done.append("small"))

    async def small_done() -> bool:
        return world.completed("small")

    await wait_until_async(small_done, 5, "small job")
    assert not world.completed("big") and done == ["small"]
    world.release_large.set()

    async def big_done() -> bool:
        return world.completed("big")

    await wait_until_async(big_done, 5, "big job")
    await runner.stop()


async def test_large_computations_take_turns_and_cancelling_stops_one() -> None:
    world = FakeWorld()
    runner = JobRunner(world.deps(), large_from_digits=LARGE, max_in_flight=8)
    done: list[str] = []
    await runner.start(JobRequested(job_id="a", num=LARGE), "p0", lambda: done.append("a"))
    await runner.start(JobRequested(job_id="b", num=2 * LARGE), "p1", lambda: done.append("b"))

    async def a_computing() -> bool:
        return world.computing == [LARGE]

    await wait_until_async(a_computing, 5, "a computing alone")
    assert runner.cancel_job("a") and not runner.cancel_job("nobody")

    async def b_computing() -> bool:
        return world.computing == [2 * LARGE]

    await wait_until_async(b_computing, 5, "b computing once a stopped")
    assert done == ["a"] and not world.completed("a")
    runner.cancel_partition("p1")

    async def b_stopped() -> bool:
        return done == ["a", "b"]

    await wait_until_async(b_stopped, 5, "b stopped with its partition")
    assert world.computing == []
    await runner.stop()
