"""A computation's checkpoints go when its job ends (completed, failed, cancelled), and stay when
the job is merely stopped here (rebalance, shutdown): another calculator resumes from them."""

import asyncio
import dataclasses
from collections.abc import Callable

import pytest

from services.calculator.handler import (
    CalculatorDeps,
    ComputeError,
    TakeChunk,
    handle_job_requested,
    whole_chunks,
)
from services.calculator.hex_digits import decimals_for_hex
from services.calculator.progress import CostModel
from services.calculator.runner import JobRunner
from services.shared.events import DIGITS_PER_CHUNK, DigitsStored, JobEvent, JobRequested, Radix
from tests.support import wait_until_async


async def pass_on(num: int, take_chunk: TakeChunk) -> None:
    """As the engine's output is read: `num` digits, chunk by chunk."""
    for index in range(num // DIGITS_PER_CHUNK):
        await take_chunk(index, "1" * DIGITS_PER_CHUNK)


class FakeCalculator:
    def __init__(self, outcome: str) -> None:
        self.outcome = outcome  # "digits", "error" or "hang"
        self.discarded: list[int] = []
        self.computing = asyncio.Event()

    def deps(self) -> CalculatorDeps:
        async def publish_job_events(*_: JobEvent) -> None:
            pass

        async def publish_digits(_: DigitsStored) -> None:
            pass

        async def stored_digits(_: int, __: Radix) -> int:
            return 0

        async def compute(
            num: int, _: Radix, __: Callable[[float], None], take_chunk: TakeChunk
        ) -> None:
            self.computing.set()
            if self.outcome == "error":
                raise ComputeError("engine died")
            if self.outcome == "hang":
                await asyncio.Event().wait()
            await pass_on(num, take_chunk)

        deps = CalculatorDeps(
            publish_job_events, publish_digits, stored_digits, compute, "w", CostModel(), 0.0
        )
        return dataclasses.replace(deps, discard_checkpoints=self.discarded.append)


@pytest.mark.parametrize("outcome", ["digits", "error"])
async def test_a_completed_or_failed_job_discards_its_checkpoints(outcome: str) -> None:
    calculator = FakeCalculator(outcome)
    await handle_job_requested(JobRequested(job_id="a", num=12_345), calculator.deps())
    assert calculator.discarded == [whole_chunks(12_345)]


async def test_a_cancelled_job_discards_them_a_stopped_one_keeps_them() -> None:
    calculator = FakeCalculator("hang")
    runner = JobRunner(calculator.deps(), large_from_digits=10**6, max_in_flight=4)
    ended: list[str] = []
    await runner.start(JobRequested(job_id="a", num=3_000_000), "p0", lambda: ended.append("a"))
    await asyncio.wait_for(calculator.computing.wait(), 5)
    assert runner.cancel_job("a")

    async def a_ended() -> bool:
        return ended == ["a"]

    await wait_until_async(a_ended, 5, "the cancelled job to end")
    assert calculator.discarded == [whole_chunks(3_000_000)]

    calculator = FakeCalculator("hang")
    runner = JobRunner(calculator.deps(), large_from_digits=10**6, max_in_flight=4)
    await runner.start(JobRequested(job_id="b", num=3_000_000), "p0", lambda: None)
    await asyncio.wait_for(calculator.computing.wait(), 5)
    runner.cancel_partition("p0")
    await runner.stop()
    assert calculator.discarded == []


class RecordingCostModel(CostModel):
    def __init__(self) -> None:
        super().__init__()
        self.learned: list[int] = []

    def learn(self, num: int, seconds: float) -> None:
        self.learned.append(num)


@pytest.mark.parametrize(("first_report", "learns"), [(0.0, True), (0.6, False)])
async def test_only_a_computation_from_zero_teaches_the_cost_model(
    first_report: float, learns: bool
) -> None:
    async def compute(
        num: int, _: Radix, on_progress: Callable[[float], None], take_chunk: TakeChunk
    ) -> None:
        on_progress(first_report)  # 0.6: the engine found 60% of its work in checkpoints
        on_progress(1.0)
        await pass_on(num, take_chunk)

    model = RecordingCostModel()
    deps = dataclasses.replace(FakeCalculator("digits").deps(), compute_digits=compute)
    deps = dataclasses.replace(deps, cost_model=model)
    await handle_job_requested(JobRequested(job_id="a", num=500), deps)
    assert model.learned == ([whole_chunks(500)] if learns else [])


async def test_a_hexadecimal_job_discards_the_computation_of_its_decimals() -> None:
    calculator = FakeCalculator("digits")
    await handle_job_requested(JobRequested(job_id="h", num=12, radix=16), calculator.deps())
    assert calculator.discarded == [decimals_for_hex(whole_chunks(12))]
