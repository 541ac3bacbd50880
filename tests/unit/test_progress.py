import itertools

import pytest

from services.calculator.progress import CostModel, ProgressTracker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


async def ignore(progress: float, eta: float) -> None:
    pass


async def test_progress_moves_with_time_and_never_claims_done() -> None:
    published: list[tuple[float, float]] = []

    async def publish(progress: float, eta: float) -> None:
        published.append((progress, eta))

    clock = Clock()
    model = CostModel()
    estimate = model.estimate_seconds(10_000_000)
    tracker = ProgressTracker(10_000_000, model, publish, interval_seconds=3, clock=clock)
    clock.now += estimate / 2
    await tracker.tick()
    clock.now += 1  # within the interval: nothing new is published
    await tracker.tick()
    clock.now += estimate * 10
    await tracker.tick()
    assert len(published) == 2
    (half, eta_half), (late, eta_late) = published
    assert 0.45 <= half <= 0.55 and eta_half > 0
    assert late == 0.95 and eta_late == 0.0


def test_the_engine_rate_sets_the_time_left_leaving_out_start_up() -> None:
    clock = Clock()
    tracker = ProgressTracker(10_000_000, CostModel(), ignore, clock=clock)
    clock.now += 0.5  # the engine's process starting
    tracker.engine_reported(0.0)
    clock.now += 3
    tracker.engine_reported(0.25)  # 25% after 3 s of computing: 9 s left
    assert tracker.current() == (0.25, 9.0)
    clock.now += 3  # no report meanwhile: the rate carries the progress on
    assert tracker.current() == (0.5, 6.0)


def test_a_slower_report_never_moves_progress_back() -> None:
    clock = Clock()
    tracker = ProgressTracker(10_000_000, CostModel(), ignore, clock=clock)
    tracker.engine_reported(0.0)
    clock.now += 2
    tracker.engine_reported(0.2)
    clock.now += 2
    assert tracker.current() == (0.4, 6.0)
    tracker.engine_reported(0.25)  # slower than it looked: 16 s in all
    assert tracker.current() == (0.4, 12.0)


def test_before_the_engine_reports_the_model_gives_the_time_left() -> None:
    clock = Clock()
    model = CostModel()
    tracker = ProgressTracker(3_000_000, model, ignore, clock=clock)
    assert tracker.current() == (0.0, round(model.estimate_seconds(3_000_000), 1))


def test_the_cost_model_learns_from_finished_computations() -> None:
    model = CostModel()
    before = model.estimate_seconds(10_000_000)
    model.learn(10_000_000, before * 3)  # halfway to what it saw
    assert model.estimate_seconds(10_000_000) == pytest.approx(before * 2)


def test_short_computations_teach_the_cost_model_nothing() -> None:
    # Mostly the start-up of the engine's process: learning from them made a large job's
    # estimate several times too long.
    model = CostModel()
    before = model.estimate_seconds(10_000_000)
    model.learn(100_000, 0.9)
    assert model.estimate_seconds(10_000_000) == before


def test_larger_computations_cost_more_per_decimal() -> None:
    model = CostModel()
    seconds = [model.estimate_seconds(10**exponent) for exponent in range(6, 9)]
    assert all(10 * smaller < larger for smaller, larger in itertools.pairwise(seconds))


async def test_a_resumed_computation_goes_on_from_the_work_it_found() -> None:
    published: list[tuple[float, float]] = []

    async def publish(progress: float, eta: float) -> None:
        published.append((progress, eta))

    clock = Clock()
    tracker = ProgressTracker(10_000_000, CostModel(), publish, interval_seconds=3, clock=clock)
    clock.now += 0.5
    tracker.engine_reported(0.6)  # its checkpoints hold 60% of the work
    await tracker.tick()  # published at once, not after the interval
    assert published and published[0][0] == 0.6
    clock.now += 2
    tracker.engine_reported(0.7)  # 10% in 2 s: the 30% left take 6 s
    assert tracker.current() == (0.7, 6.0)
    clock.now += 2  # between reports, time carries it on from there
    assert tracker.current() == (0.8, 4.0)
