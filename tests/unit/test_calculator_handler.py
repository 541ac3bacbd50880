"""The calculator's handler, run with in-memory stand-ins for its publishing and computing."""

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from services.calculator.handler import (
    CalculatorDeps,
    ComputeError,
    TakeChunk,
    handle_job_requested,
    serve_from_stored,
    whole_chunks,
)
from services.calculator.progress import CostModel
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

C = DIGITS_PER_CHUNK


def fake_decimals(num: int) -> str:
    return "".join(str(i % 10) for i in range(num))


@dataclass
class FakeLog:
    events: list[JobEvent] = field(default_factory=list)
    chunks: dict[int, str] = field(default_factory=dict)
    hex_chunks: dict[int, str] = field(default_factory=dict)
    computed: list[int] = field(default_factory=list)
    computed_hex: list[int] = field(default_factory=list)
    fail_with: str | None = None
    engine_progress: list[float] = field(default_factory=list)
    publish_calls: int = 0
    # What another calculator stores while this one computes.
    stored_meanwhile: Callable[["FakeLog"], None] = lambda _: None

    def stored(self, radix: Radix = 10) -> int:
        return sum(len(d) for d in (self.chunks if radix == 10 else self.hex_chunks).values())

    def deps(self) -> CalculatorDeps:
        async def publish_job_events(*events: JobEvent) -> None:
            self.events.extend(events)
            self.publish_calls += 1

        async def publish_digits(chunk: DigitsStored) -> None:
            (self.chunks if chunk.radix == 10 else self.hex_chunks)[chunk.chunk_index] = (
                chunk.digits
            )

        async def stored_digits(_wanted: int, radix: Radix) -> int:
            return self.stored(radix)

        async def compute(
            num: int, radix: Radix, on_progress: Callable[[float], None], take_chunk: TakeChunk
        ) -> None:
            if self.fail_with:
                raise ComputeError(self.fail_with)
            for fraction in self.engine_progress:
                on_progress(fraction)
            (self.computed if radix == 10 else self.computed_hex).append(num)
            self.stored_meanwhile(self)
            digits = fake_decimals(num) if radix == 10 else "a" * num
            for index in range(num // C):
                await take_chunk(index, digits[index * C : (index + 1) * C])

        return CalculatorDeps(
            publish_job_events, publish_digits, stored_digits, compute, "w", CostModel(), 0.0
        )


async def test_a_new_job_computes_whole_chunks_stores_them_then_completes() -> None:
    log = FakeLog()
    await handle_job_requested(JobRequested(job_id="a", num=12), log.deps())
    assert isinstance(log.events[0], JobStarted) and isinstance(log.events[-1], JobCompleted)
    assert log.computed == [C] and log.chunks == {0: fake_decimals(C)}
    assert log.events[-1].digits_source == "computed"


async def test_a_job_within_the_stored_digits_computes_nothing() -> None:
    log = FakeLog()
    await handle_job_requested(JobRequested(job_id="a", num=1000), log.deps())
    await handle_job_requested(JobRequested(job_id="b", num=C), log.deps())
    assert log.computed == [C]
    completed = log.events[-1]
    assert isinstance(completed, JobCompleted) and completed.digits_source == "stored"
    # Nothing to wait for: one event completes it, naming the worker.
    assert [type(e) for e in log.events if e.job_id == "b"] == [JobCompleted]
    assert completed.worker == "w"


async def test_jobs_answered_by_stored_digits_are_completed_together() -> None:
    log = FakeLog()
    await handle_job_requested(JobRequested(job_id="a", num=1000), log.deps())
    before, calls = len(log.events), log.publish_calls
    burst = [JobRequested(job_id=f"j{i}", num=i + 1) for i in range(50)]
    await serve_from_stored(burst, log.deps())
    assert log.publish_calls == calls + 1
    completions = log.events[before:]
    assert [e.job_id for e in completions] == [e.job_id for e in burst]
    assert all(isinstance(e, JobCompleted) and e.digits_source == "stored" for e in completions)
    assert log.computed == [C]


async def test_a_larger_job_publishes_only_the_new_chunks() -> None:
    log = FakeLog()
    await handle_job_requested(JobRequested(job_id="a", num=10), log.deps())
    await handle_job_requested(JobRequested(job_id="b", num=2 * C + 1), log.deps())
    assert log.computed == [C, 3 * C]
    assert sorted(log.chunks) == [0, 1, 2]


async def test_hexadecimal_digits_are_computed_and_stored_apart_from_decimals() -> None:
    log = FakeLog()
    await handle_job_requested(JobRequested(job_id="a", num=C + 1), log.deps())
    await handle_job_requested(JobRequested(job_id="h", num=12, radix=16), log.deps())
    assert (log.computed, log.computed_hex) == ([2 * C], [C])
    assert log.hex_chunks == {0: "a" * C} and sorted(log.chunks) == [0, 1]
    await handle_job_requested(JobRequested(job_id="h2", num=C, radix=16), log.deps())
    assert log.computed_hex == [C], "the stored hexadecimal chunk answers it"
    assert log.events[-1] == JobCompleted(
        job_id="h2",
        num=C,
        digits_source="stored",
        compute_seconds=0,
        worker="w",
        occurred_at=log.events[-1].occurred_at,
    )


async def test_a_failed_computation_fails_the_job() -> None:
    log = FakeLog(fail_with="not enough memory")
    await handle_job_requested(JobRequested(job_id="a", num=5), log.deps())
    assert isinstance(log.events[-1], JobFailed) and "memory" in log.events[-1].error
    assert log.chunks == {}


async def test_engine_progress_is_published_as_job_progress() -> None:
    log = FakeLog(engine_progress=[0.5])
    deps = log.deps()
    await handle_job_requested(JobRequested(job_id="a", num=5), deps)
    # With a zero interval every tick publishes; a fast fake may finish before the first tick.
    progressed = [e for e in log.events if isinstance(e, JobProgressed)]
    assert all(0 <= e.progress <= 1 for e in progressed)


def test_computations_are_rounded_up_to_whole_chunks() -> None:
    assert [whole_chunks(n) for n in (1, C, C + 1)] == [C, C, 2 * C]


async def test_chunks_stored_meanwhile_by_another_job_are_not_published_again() -> None:
    published: list[int] = []

    def another_job_stores_two(log: FakeLog) -> None:
        log.chunks.update({0: fake_decimals(C), 1: fake_decimals(2 * C)[C:]})

    log = FakeLog(stored_meanwhile=another_job_stores_two)
    deps = log.deps()
    store = deps.publish_digits

    async def recording(chunk: DigitsStored) -> None:
        published.append(chunk.chunk_index)
        await store(chunk)

    await handle_job_requested(
        JobRequested(job_id="a", num=3 * C), dataclasses.replace(deps, publish_digits=recording)
    )
    assert published == [2]
    assert "".join(log.chunks[i] for i in range(3)) == fake_decimals(3 * C)
    assert isinstance(log.events[-1], JobCompleted)
