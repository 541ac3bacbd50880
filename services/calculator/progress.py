"""Progress of a running computation: what the engine reports, filled in by an estimate.

The engine reports the share of its work done, in steps of about 1%, in proportion to time (see
phases.py): the time it took for that share says how long the rest will take. Between reports,
and before the first, progress and time left come from the elapsed time, so a long job's status
moves every few seconds without flooding the log.
"""

import time
from collections.abc import Awaitable, Callable

from services.calculator.engine import modelled_cost

# Wall seconds per unit of modelled work before any calibration (this 2-core machine, idle:
# about 0.5 s for 1,000,000 decimals, 7 s for 10,000,000).
_INITIAL_SECONDS_PER_WORK = 1.7e-11
# Starting the engine's process, before it reports anything.
_START_UP_SECONDS = 0.15
# Shorter computations are mostly start-up and never show an estimate: nothing to learn.
_LEARN_FROM_SECONDS = 1.0
# Progress estimated from time alone stops short of done: only the engine says it is finished.
_ESTIMATE_CAP = 0.95


class CostModel:
    """Seconds a computation takes: the engine's modelled work at the speed recently seen."""

    def __init__(self) -> None:
        self._seconds_per_work = _INITIAL_SECONDS_PER_WORK

    def estimate_seconds(self, num: int) -> float:
        return _START_UP_SECONDS + self._seconds_per_work * modelled_cost(num)

    def learn(self, num: int, seconds: float) -> None:
        if seconds < _LEARN_FROM_SECONDS:
            return
        observed = (seconds - _START_UP_SECONDS) / modelled_cost(num)
        self._seconds_per_work = 0.5 * self._seconds_per_work + 0.5 * observed


class ProgressTracker:
    """Turns engine reports and elapsed time into (progress, seconds left) to publish."""

    def __init__(
        self,
        num: int,
        model: CostModel,
        publish: Callable[[float, float], Awaitable[None]],
        interval_seconds: float = 3.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._publish = publish
        self._interval = interval_seconds
        self._clock = clock
        # Progress runs from _since and takes _expected seconds in all.
        self._since = clock()
        self._expected = model.estimate_seconds(num)
        self._engine_started = False
        self._base = 0.0  # the share done when the engine started (resumed work)
        self._publish_now = False
        self._reported = 0.0
        self._shown = 0.0  # never published lower than before: estimates only move forward
        self._last_publish = self._since

    def engine_reported(self, fraction: float) -> None:
        now = self._clock()
        if not self._engine_started:
            # Its first report comes as it starts computing: its rate leaves out the start-up.
            # A resumed computation starts with a share already done: progress goes on from it.
            self._engine_started = True
            self._base = fraction
            self._expected = max(self._expected - (now - self._since), 0.0) * (1.0 - fraction)
            self._since = now
            self._publish_now = fraction > 0
        self._reported = max(self._reported, fraction)
        if fraction > self._base:
            # The engine's work is modelled in proportion to time: the rest goes at this rate.
            self._expected = (now - self._since) * (1.0 - self._base) / (fraction - self._base)

    @property
    def started_from(self) -> float:
        """The share of the work done when the engine started (checkpoints, series state)."""
        return self._base

    def current(self) -> tuple[float, float]:
        running = self._clock() - self._since
        by_time = 0.0
        if self._expected:
            share = min(running / self._expected, 1.0)
            by_time = min(self._base + (1.0 - self._base) * share, _ESTIMATE_CAP)
        self._shown = max(self._shown, self._reported, by_time)
        return round(self._shown, 3), round(max(self._expected - running, 0.0), 1)

    async def tick(self) -> None:
        """Publish if the last publication is older than the interval, or the engine resumed."""
        if self._publish_now or self._clock() - self._last_publish >= self._interval:
            self._publish_now = False
            self._last_publish = self._clock()
            await self._publish(*self.current())
