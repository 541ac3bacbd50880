"""The engine's work model and the progress it reports, without computing anything."""

import itertools

import pytest

from services.calculator.chudnovsky import LEAF_TERMS, terms_for_digits
from services.calculator.parallel import split_point
from services.calculator.phases import (
    LEAF_COST_PER_TERM,
    PARALLEL_PHASES,
    REPORT_STEP,
    EngineProgress,
    is_reported,
    join_cost,
    phase_costs,
    subtree_cost,
)


def exact_subtree_cost(a: int, b: int) -> float:
    """Every node of split(a, b), one by one."""
    if b - a <= LEAF_TERMS:
        return LEAF_COST_PER_TERM * (b - a)
    mid = (a + b) // 2
    return join_cost(a, b) + exact_subtree_cost(a, mid) + exact_subtree_cost(mid, b)


def walk(progress: EngineProgress, a: int, b: int) -> None:
    """The order in which chudnovsky.split tells of its nodes, without the arithmetic."""
    if not is_reported(a, b, progress.min_terms):
        return
    mid = (a + b) // 2
    walk(progress, a, mid)
    walk(progress, mid, b)
    progress.node_done(a, b)


def run(decimals: int, terms: int) -> tuple[list[float], float]:
    """Fractions reported over a whole computation; the last one before the splitting ended."""
    reported: list[float] = []
    progress = EngineProgress(decimals, (0, terms), PARALLEL_PHASES, reported.append)
    walk(progress, 0, terms)
    split_end = reported[-1]
    for phase in ("split", *PARALLEL_PHASES):
        progress.finished(phase)
    return reported, split_end


@pytest.mark.parametrize(("a", "b"), [(0, 40_000), (30_000, 70_001), (5, 300)])
def test_a_subtree_costs_about_the_sum_of_its_nodes(a: int, b: int) -> None:
    assert subtree_cost(a, b) == pytest.approx(exact_subtree_cost(a, b), rel=0.05)


@pytest.mark.parametrize(("decimals", "terms"), [(10_000_000, 402_000), (1_000, 40)])
def test_progress_starts_at_0_rises_in_steps_and_ends_at_1(decimals: int, terms: int) -> None:
    reported, _ = run(decimals, terms)
    assert reported[0] == 0.0 and reported[-1] == 1.0
    steps = [later - earlier for earlier, later in itertools.pairwise(reported)]
    assert all(step >= REPORT_STEP for step in steps[:-1])
    assert len(reported) <= 1 / REPORT_STEP + 2


def test_the_splitting_is_reported_node_by_node_up_to_its_share() -> None:
    reported, split_end = run(10_000_000, 402_000)
    costs = dict(phase_costs(10_000_000, (0, 402_000), PARALLEL_PHASES))
    # A job once went from 36% to 65% in one step: the splitting was a single report.
    assert len([fraction for fraction in reported if fraction <= split_end]) > 40
    assert split_end == pytest.approx(costs["split"] / sum(costs.values()), abs=REPORT_STEP)


@pytest.mark.parametrize("decimals", [1_000_000, 10_000_000, 100_000_000])
def test_the_phases_after_the_splitting_weigh_what_they_were_measured_to(decimals: int) -> None:
    # Measured on this machine (CPU time, 1M to 30M decimals): the splitting about 60% of the
    # parent's time, each later phase 4% to 14%.
    costs = dict(
        phase_costs(decimals, (0, split_point(0, terms_for_digits(decimals))), PARALLEL_PHASES)
    )
    total = sum(costs.values())
    assert 0.5 < costs["split"] / total < 0.72
    assert all(0.03 < costs[phase] / total < 0.16 for phase in PARALLEL_PHASES)


def test_after_a_stored_series_state_the_worker_takes_more_of_the_new_terms() -> None:
    # The parent joins the stored state besides splitting: from 100,000,000 to 200,000,000
    # decimals it took 0.57 of the new terms and ended its splitting 30 s after the worker.
    stored, terms = terms_for_digits(100_000_016), terms_for_digits(200_000_016)
    share = (split_point(stored, terms) - stored) / (terms - stored)
    assert 0.3 < share < 0.5
    # The larger the stored state, the less the parent splits; nothing past a few new terms.
    nearly_all = terms_for_digits(195_000_016)
    assert split_point(nearly_all, terms) - nearly_all < 0.2 * (terms - nearly_all)
    assert stored <= split_point(stored, stored + 1) <= stored + 1
