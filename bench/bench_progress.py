"""Progress and time left of a computation, against what really happened.

    .venv/bin/python -m bench.bench_progress [--sizes 1000000,3000000,10000000,30000000]

Each size is computed as the calculator computes a job: the engine in a child process
(compute_digits), its reports fed to a ProgressTracker, read here every 50 ms. Each size gets
a fresh CostModel that has learned from one 100,000-decimal computation (the smallest a job
computes), as a calculator's has after a small job, so rows do not depend on one another (the
job in issue 14 came after small ones). Per size: the time left shown when
the progress first reached 25% and 50%, beside the time that was really left, and the largest
rise of the shown progress within one second (a smooth bar rises by about 1 s / total each
second). The machine's load average over that minute closes each row: other work on the cores
changes the speed in mid-computation, which no estimate foresees.
"""

import argparse
import asyncio
import os
import time
from dataclasses import dataclass

from services.calculator.compute import compute_digits
from services.calculator.progress import CostModel, ProgressTracker

WARM_UP_DECIMALS = 100_000
READ_EVERY_SECONDS = 0.05
CHECKPOINTS = (0.25, 0.5)


@dataclass(frozen=True)
class Reading:
    at: float  # seconds since the computation started
    progress: float
    eta: float


async def readings_of(num: int, model: CostModel) -> tuple[list[Reading], float]:
    """What the tracker showed during one computation, and how long the computation took."""

    async def publish(progress: float, eta: float) -> None:
        pass

    async def drop_chunk(_index: int, _digits: str) -> None:
        pass

    tracker = ProgressTracker(num, model, publish)
    started = time.monotonic()
    computing = asyncio.ensure_future(compute_digits(num, 10, tracker.engine_reported, drop_chunk))
    readings: list[Reading] = []
    while not computing.done():
        progress, eta = tracker.current()
        readings.append(Reading(time.monotonic() - started, progress, eta))
        await asyncio.wait({computing}, timeout=READ_EVERY_SECONDS)
    await computing
    seconds = time.monotonic() - started
    model.learn(num, seconds)
    return readings, seconds


def at_checkpoint(readings: list[Reading], fraction: float) -> Reading | None:
    return next((reading for reading in readings if reading.progress >= fraction), None)


def largest_rise_in_a_second(readings: list[Reading]) -> float:
    return max(
        (
            later.progress - reading.progress
            for i, reading in enumerate(readings)
            for later in readings[i + 1 :]
            if later.at - reading.at <= 1.0
        ),
        default=0.0,
    )


def row(num: int, readings: list[Reading], seconds: float) -> str:
    cells = [f"{num:>12,}", f"{seconds:8.1f}"]
    for fraction in CHECKPOINTS:
        reading = at_checkpoint(readings, fraction)
        if reading is None:
            cells.append(f"{'-':>8} {'-':>8} {'-':>6}")
            continue
        left = seconds - reading.at
        error = (reading.eta - left) / left if left > 0 else 0.0
        cells.append(f"{reading.eta:8.1f} {left:8.1f} {error:+6.0%}")
    cells.append(f"{largest_rise_in_a_second(readings):9.0%}")
    cells.append(f"{os.getloadavg()[0]:6.1f}")
    return " ".join(cells)


async def run(sizes: list[int]) -> None:
    header = (
        f"{'decimals':>12} {'total s':>8} {'eta@25%':>8} {'left':>8} {'error':>6} "
        f"{'eta@50%':>8} {'left':>8} {'error':>6} {'rise/1s':>9} {'load':>6}"
    )
    print(header)
    print("-" * len(header))
    for num in sizes:
        model = CostModel()
        await readings_of(WARM_UP_DECIMALS, model)
        readings, seconds = await readings_of(num, model)
        print(row(num, readings, seconds), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,3000000,10000000,30000000")
    args = parser.parse_args()
    asyncio.run(run([int(size) for size in args.sizes.split(",") if size]))


if __name__ == "__main__":
    main()
