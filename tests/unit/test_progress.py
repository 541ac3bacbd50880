from services.calculator.progress import CostModel, ProgressTracker


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


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


def test_engine_milestones_set_the_estimate() -> None:
    clock = Clock()

    async def publish(progress: float, eta: float) -> None:
        pass

    tracker = ProgressTracker(10_000_000, CostModel(), publish, clock=clock)
    clock.now += 6
    tracker.engine_reported(0.6)  # 60% after 6 s: 10 s in all
    assert tracker.current() == (0.6, 4.0)


def test_the_cost_model_learns_from_finished_computations() -> None:
    model = CostModel()
    before = model.estimate_seconds(1_000_000)
    model.learn(1_000_000, before * 3)
    assert model.estimate_seconds(1_000_000) == before * 2
