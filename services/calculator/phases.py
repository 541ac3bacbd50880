"""The digit engine's work, phase by phase, in one unit: the progress it reports is the share of
that work done, so it moves in proportion to time instead of jumping between milestones.

The unit is what multiplying two numbers of `bits` bits costs, bits * log2(bits)^2: the joins of
binary splitting and GMP's division grow about so. The coefficients were measured phase by phase
on the 2-core machine this was written on; make bench-progress shows how well the time left that
follows from them holds.
"""

import math
from collections.abc import Callable
from itertools import accumulate

from services.calculator.chudnovsky import DIGITS_PER_TERM, LEAF_TERMS, precision_bits

# A leaf's Python loop, per term.
LEAF_COST_PER_TERM = 8.5e4
# The phases after the binary splitting, in multiply_cost(precision bits) (the conversion to
# digits: conversion_cost), measured at 1M to 30M decimals. The parallel engine's parent converts
# half the digits. Its figures lie between an idle machine's and a busy one's: load slows the
# phases where both processes work (splitting, conversion) more than the parent's own (division).
PARALLEL_PHASES = {"join": 2.2, "divide": 1.8, "cut": 0.8, "digits": 2.9}
SERIAL_PHASES = {"numerator": 3.2, "divide": 2.2, "digits": 5.8}
# The parallel engine's worker also takes sqrt(10005): in multiply_cost(precision bits), what
# makes the parent's share 0.57 of the terms at 200,000,000 decimals (both processes were measured
# to end their splitting together there).
SQRT_COST = 3.7
# A parent that starts from a stored series state of [0, start) reads it, joins its segments and
# joins it to its own range [start, mid): measured 44 s at 100,000,000 -> 200,000,000 decimals,
# three times join_cost(0, mid).
STORED_JOIN_COST = 3.0
# The splitting is reported node by node down to about this many subtrees.
REPORTED_SUBTREES = 128
# Smaller steps are not reported: a job's progress line per percent at most.
REPORT_STEP = 0.01


def multiply_cost(bits: float) -> float:
    return bits * math.log2(max(bits, 2.0)) ** 2


def conversion_cost(bits: float) -> float:
    """Radix conversion, measured to grow by log2(bits)^2 faster than a multiplication (it
    divides once per halving); equal to multiply_cost near 10,000,000 decimals."""
    return multiply_cost(bits) * (math.log2(max(bits, 2.0)) / 25) ** 2


def _bits_per_term(k: float) -> float:
    """Size of T(a, b) per term near term k, measured (P and Q grow alike)."""
    return 3.04 * math.log2(k + 1) + 52.5


def join_cost(a: int, b: int) -> float:
    return multiply_cost((b - a) * _bits_per_term((a + b) / 2))


def subtree_cost(a: int, b: int) -> float:
    """split(a, b) whole: a level of joins per halving, then the leaves."""
    per_term = _bits_per_term((a + b) / 2)
    cost, nodes, size = 0.0, 1, float(b - a)
    while size > LEAF_TERMS:
        cost += nodes * multiply_cost(size * per_term)
        nodes, size = nodes * 2, size / 2
    return cost + LEAF_COST_PER_TERM * (b - a)


def balanced_mid(start: int, terms: int) -> int:
    """Where the parent's range [start, mid) ends, after a stored series state of [0, start), so
    that both processes' modelled work is equal: the parent's includes joining the stored state,
    the worker's the square root."""
    sqrt_cost = SQRT_COST * multiply_cost(precision_bits(int(terms * DIGITS_PER_TERM)))
    low, high = start, terms
    while low < high:
        mid = (low + high) // 2
        parent = subtree_cost(start, mid) + STORED_JOIN_COST * join_cost(0, mid)
        if parent < subtree_cost(mid, terms) + sqrt_cost:
            low = mid + 1
        else:
            high = mid
    return low


def is_reported(a: int, b: int, min_terms: int) -> bool:
    return b - a > LEAF_TERMS and b - a >= min_terms


def split_cost(a: int, b: int, min_terms: int) -> float:
    """split(a, b), summed as the engine reports it: node by node down to min_terms."""
    if not is_reported(a, b, min_terms):
        return subtree_cost(a, b)
    mid = (a + b) // 2
    return join_cost(a, b) + split_cost(a, mid, min_terms) + split_cost(mid, b, min_terms)


def node_cost(a: int, b: int, min_terms: int) -> float:
    """What a reported node adds when it is done: its join and its children not reported."""
    mid = (a + b) // 2
    children = ((a, mid), (mid, b))
    return join_cost(a, b) + sum(
        subtree_cost(*child) for child in children if not is_reported(*child, min_terms)
    )


def min_terms_for(a: int, b: int) -> int:
    return max(LEAF_TERMS + 1, (b - a) // REPORTED_SUBTREES)


def phase_costs(
    decimals: int, split_terms: tuple[int, int], coefficients: dict[str, float]
) -> list[tuple[str, float]]:
    """The engine's phases in order, with their modelled costs: the splitting, then the rest."""
    bits = precision_bits(decimals)
    return [("split", split_cost(*split_terms, min_terms_for(*split_terms)))] + [
        (phase, coefficient * (conversion_cost(bits) if phase == "digits" else multiply_cost(bits)))
        for phase, coefficient in coefficients.items()
    ]


def total_cost(
    decimals: int, split_terms: tuple[int, int], coefficients: dict[str, float]
) -> float:
    return sum(cost for _, cost in phase_costs(decimals, split_terms, coefficients))


class EngineProgress:
    """Reports the share of the modelled work done: 0 at once, then in steps of REPORT_STEP or
    more as nodes of the splitting are joined and phases finish, 1 at the end."""

    def __init__(
        self,
        decimals: int,
        split_terms: tuple[int, int],
        coefficients: dict[str, float],
        report: Callable[[float], None],
        *,
        stored_cost: float = 0.0,
        done_at_start: float = 0.0,
        resume_after: str | None = None,
    ) -> None:
        """stored_cost: the work a stored series state saves (a phase done before the start);
        done_at_start: work found in checkpoints; resume_after: a phase whose result was found.
        The first report is the share already done, so a resumed job's progress goes on."""
        phases = [("stored", stored_cost), *phase_costs(decimals, split_terms, coefficients)]
        ends = accumulate(cost for _, cost in phases)
        self._ends = {name: end for (name, _), end in zip(phases, ends, strict=True)}
        self._total = self._ends[phases[-1][0]]
        self.min_terms = min_terms_for(*split_terms)
        self._report = report
        self._done = stored_cost + done_at_start
        if resume_after is not None:
            self._done = self._ends[resume_after]
        self._reported = self._done / self._total
        report(self._reported)

    def node_done(self, a: int, b: int) -> None:
        """A node of the splitting is joined (called by chudnovsky.split)."""
        self._done += node_cost(a, b, self.min_terms)
        self._maybe_report()

    def finished(self, phase: str) -> None:
        self._done = self._ends[phase]
        self._maybe_report()

    def _maybe_report(self) -> None:
        fraction = min(self._done / self._total, 1.0)
        if fraction >= self._reported + REPORT_STEP or (fraction == 1.0 > self._reported):
            self._reported = fraction
            self._report(fraction)
