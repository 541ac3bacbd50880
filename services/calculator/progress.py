"""Progress of a running computation: what the engine reports, filled in by an estimate.

The engine reports a few milestones; between them, progress and time left come from a cost model
(calibrated by the computations this calculator has finished), so a long job's status moves every
few seconds without flooding the log.
"""

import math
import time
from collections.abc import Awaitable, Callable

# Seconds for 1,000,000 decimals before any calibration (this 2-core machine: ~0.5 s).
_INITIAL_SECONDS_PER_MILLION = 0.6
# Progress estimated from time alone stops short of done: only the engine says it is finished.
_ESTIMATE_CAP = 0.95


def _work(num: int) -> float:
    """Relative cost of `num` decimals: binary splitting and GMP's FFT grow like n log(n)^2."""
    return num * math.log2(max(num, 2)) ** 2


class CostModel:
    def __init__(self) -> None:
        self._seconds_per_work = _INITIAL_SECONDS_PER_MILLION / _work(1_000_000)

    def estimate_seconds(self, num: int) -> float:
        return self._seconds_per_work * _work(num)

    def learn(self, num: int, seconds: float) -> None:
        observed = seconds / _work(num)
        self._seconds_per_work = 0.5 * self._seconds_per_work + 0.5 * observed


class ProgressTracker:
    """Turns engine milestones and elapsed time into (progress, seconds left) to publish."""

    def __init__(
        self,
        num: int,
        model: CostModel,
        publish: Callable[[float, float], Awaitable[None]],
        interval_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._estimate = model.estimate_seconds(num)
        self._publish = publish
        self._interval = interval_seconds
        self._clock = clock
        self._started = clock()
        self._reported = 0.0
        self._shown = 0.0  # never published lower than before: estimates only move forward
        self._last_publish = self._started

    def engine_reported(self, fraction: float) -> None:
        self._reported = max(self._reported, fraction)
        if fraction > 0:
            # The engine's own figure says how long the whole will take.
            self._estimate = (self._clock() - self._started) / fraction

    def current(self) -> tuple[float, float]:
        elapsed = self._clock() - self._started
        by_time = min(elapsed / self._estimate, _ESTIMATE_CAP) if self._estimate else 0.0
        self._shown = max(self._shown, self._reported, by_time)
        return round(self._shown, 3), round(max(self._estimate - elapsed, 0.0), 1)

    async def tick(self) -> None:
        """Publish if the last publication is older than the interval."""
        if self._clock() - self._last_publish >= self._interval:
            self._last_publish = self._clock()
            await self._publish(*self.current())
