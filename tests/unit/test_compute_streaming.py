"""The calculator reads the engine's stdout a chunk at a time and passes each chunk on at once;
it refuses, as a failed job, what the host has no memory for."""

import asyncio

from services.calculator.compute import compute_digits, read_chunks
from services.calculator.handler import CalculatorDeps, handle_job_requested
from services.calculator.memory import available_bytes, estimate_peak_bytes
from services.calculator.progress import CostModel
from services.shared.events import (
    DIGITS_PER_CHUNK,
    DigitsStored,
    JobEvent,
    JobFailed,
    JobRequested,
    Radix,
)

C = DIGITS_PER_CHUNK


def digits_of(count: int) -> bytes:
    return bytes(48 + (i * 7 + i // 13) % 10 for i in range(count))


async def test_each_chunk_is_passed_on_before_the_next_is_written() -> None:
    stdout = asyncio.StreamReader()
    decimals = digits_of(3 * C)
    taken: list[tuple[int, str]] = []
    chunk_taken = asyncio.Event()

    async def take(index: int, digits: str) -> None:
        taken.append((index, digits))
        chunk_taken.set()

    reading = asyncio.ensure_future(read_chunks(stdout, 3 * C, take))
    stdout.feed_data(b"3." + decimals[: C + 5])  # the first chunk and a little more
    await asyncio.wait_for(chunk_taken.wait(), timeout=10)
    # Only whole chunks are passed on; the rest of the output has not been written yet.
    assert [index for index, _ in taken] == [0] and not reading.done()
    for start in range(C + 5, 3 * C, 65_536):  # the pipe's pieces do not follow chunk edges
        stdout.feed_data(decimals[start : start + 65_536])
    stdout.feed_eof()
    assert await asyncio.wait_for(reading, timeout=10) is None
    assert [index for index, _ in taken] == [0, 1, 2]
    assert "".join(digits for _, digits in taken).encode() == decimals


async def test_short_output_is_a_fault_naming_the_count() -> None:
    stdout = asyncio.StreamReader()
    taken: list[int] = []

    async def take(index: int, _digits: str) -> None:
        taken.append(index)

    stdout.feed_data(b"3." + digits_of(C + 10))
    stdout.feed_eof()
    fault = await read_chunks(stdout, 2 * C, take)
    assert fault is not None and f"{C + 10} digits" in fault and str(2 * C) in fault
    assert taken == [0]  # the whole first chunk was right; the partial one is never passed on


async def test_output_that_is_not_digits_is_a_fault() -> None:
    for output in (b"x." + digits_of(C), b"3." + digits_of(C - 1) + b"a", b"3." + digits_of(C + 1)):
        stdout = asyncio.StreamReader()
        taken: list[int] = []

        async def take(index: int, _digits: str, seen: list[int] = taken) -> None:
            seen.append(index)

        stdout.feed_data(output)
        stdout.feed_eof()
        assert await read_chunks(stdout, C, take) is not None, output[:4]
        assert taken == ([0] if output.endswith(digits_of(C + 1)) else [])


async def test_a_fault_still_reads_the_output_to_its_end() -> None:
    stdout = asyncio.StreamReader()

    async def take(_index: int, _digits: str) -> None:
        pass

    stdout.feed_data(b"3.12a" + digits_of(5 * C))
    stdout.feed_eof()
    assert await read_chunks(stdout, 2 * C, take) is not None
    assert stdout.at_eof()


async def test_a_job_the_host_has_no_memory_for_fails_with_the_reason_before_computing() -> None:
    num = 10_000_000_000  # its estimate, 125 GB and more, is beyond any host this runs on
    assert estimate_peak_bytes(num) > (available_bytes() or 0)
    events: list[JobEvent] = []
    chunks: list[DigitsStored] = []

    async def publish_job_events(*published: JobEvent) -> None:
        events.extend(published)

    async def publish_digits(chunk: DigitsStored) -> None:
        chunks.append(chunk)

    async def stored_digits(_wanted: int, _radix: Radix) -> int:
        return 0

    deps = CalculatorDeps(
        publish_job_events, publish_digits, stored_digits, compute_digits, "w", CostModel(), 0.0
    )
    await asyncio.wait_for(handle_job_requested(JobRequested(job_id="a", num=num), deps), 30)
    failed = events[-1]
    assert isinstance(failed, JobFailed) and failed.job_id == "a"
    assert "refused" in failed.error and "MiB of memory" in failed.error
    assert str(num) in failed.error and chunks == []
