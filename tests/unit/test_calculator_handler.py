"""The calculator's handler, run with in-memory stand-ins for its publishing and computing."""

from dataclasses import dataclass, field

from services.calculator.handler import (
    CalculatorDeps,
    ComputeError,
    chunks_to_store,
    handle_job_requested,
)
from services.shared.events import (
    DIGITS_PER_CHUNK,
    DigitsStored,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobRequested,
    JobStarted,
)

C = DIGITS_PER_CHUNK


def fake_decimals(num: int) -> str:
    return "".join(str(i % 10) for i in range(num))


@dataclass
class FakeLog:
    events: list[JobEvent] = field(default_factory=list)
    chunks: dict[int, str] = field(default_factory=dict)
    computed: list[int] = field(default_factory=list)
    fail_with: str | None = None

    def stored(self) -> int:
        return sum(len(d) for d in self.chunks.values())

    def deps(self) -> CalculatorDeps:
        async def publish_job_event(event: JobEvent) -> None:
            self.events.append(event)

        async def publish_digits(chunk: DigitsStored) -> None:
            self.chunks[chunk.chunk_index] = chunk.digits

        async def stored_digits(_wanted: int) -> int:
            return self.stored()

        async def compute(num: int) -> str:
            if self.fail_with:
                raise ComputeError(self.fail_with)
            self.computed.append(num)
            return fake_decimals(num)

        return CalculatorDeps(publish_job_event, publish_digits, stored_digits, compute, "w")


async def test_a_new_job_is_computed_stored_then_completed() -> None:
    log = FakeLog()
    await handle_job_requested(JobRequested(job_id="a", num=12), log.deps())
    assert [type(e) for e in log.events] == [JobStarted, JobCompleted]
    assert log.computed == [12] and log.chunks == {0: fake_decimals(12)}
    completed = log.events[-1]
    assert isinstance(completed, JobCompleted) and completed.digits_source == "computed"


async def test_a_job_within_the_stored_digits_computes_nothing() -> None:
    log = FakeLog()
    await handle_job_requested(JobRequested(job_id="a", num=1000), log.deps())
    await handle_job_requested(JobRequested(job_id="b", num=999), log.deps())
    assert log.computed == [1000]
    completed = log.events[-1]
    assert isinstance(completed, JobCompleted) and completed.digits_source == "stored"


async def test_a_failed_computation_fails_the_job() -> None:
    log = FakeLog(fail_with="not enough memory")
    await handle_job_requested(JobRequested(job_id="a", num=5), log.deps())
    assert isinstance(log.events[-1], JobFailed) and "memory" in log.events[-1].error
    assert log.chunks == {}


def test_only_chunks_beyond_the_stored_prefix_are_published_again() -> None:
    decimals = fake_decimals(2 * C + 10)
    chunks = list(chunks_to_store(decimals, already_stored=C + 5))
    # Chunk 1 held 5 digits: it is published again whole, then the new chunk 2.
    assert [(c.chunk_index, len(c.digits)) for c in chunks] == [(1, C), (2, 10)]
    assert "".join(c.digits for c in chunks) == decimals[C:]
    assert [c.chunk_index for c in chunks_to_store(decimals, already_stored=0)] == [0, 1, 2]
    assert list(chunks_to_store(decimals[:C], already_stored=C)) == []
