"""Digits of pi: public entry point of the digit engine."""

import io
import multiprocessing as mp
from collections.abc import Callable
from typing import BinaryIO

from gmpy2 import mpz

from services.calculator.checkpoints import CheckpointConfig
from services.calculator.chudnovsky import (
    Mpz,
    pi_numerator,
    pi_scaled,
    q_two_exponent,
    scaled_sqrt_10005,
    split,
    terms_for_digits,
)
from services.calculator.memory import (
    InsufficientMemoryError,
    ensure_memory_for,
    estimate_peak_bytes,
)
from services.calculator.parallel import compute_parallel, split_point
from services.calculator.phases import PARALLEL_PHASES, SERIAL_PHASES, EngineProgress, total_cost

__all__ = [
    "InsufficientMemoryError",
    "estimate_peak_bytes",
    "modelled_cost",
    "pi_decimals",
    "write_pi_decimals",
]

GUARD_DIGITS = 16
# The computed floor(pi * 10^(num + guard)) is off by at most 2 units.
ERROR_MARGIN = 10
# Below this a second process costs more than it saves.
PARALLEL_FROM_DECIMALS = 100_000


def _truncator(guard: int) -> Callable[[Mpz], Mpz | None]:
    scale = mpz(10) ** guard

    def truncate_checked(scaled_pi: Mpz) -> Mpz | None:
        """floor(pi * 10^num), or None if the guard digits cannot decide it."""
        kept, guard_part = divmod(scaled_pi, scale)
        if guard_part < ERROR_MARGIN or guard_part > scale - ERROR_MARGIN:
            return None
        return kept

    return truncate_checked


def _compute_serial(
    num: int,
    guard: int,
    truncate_checked: Callable[[Mpz], Mpz | None],
    report: Callable[[float], None],
) -> str | None:
    decimals = num + guard
    terms = terms_for_digits(decimals)
    progress = EngineProgress(decimals, (0, terms), SERIAL_PHASES, report)
    series = split(0, terms, need_p=False, progress=progress)
    progress.finished("split")
    numerator, q_drop = pi_numerator(series.q_reduced, scaled_sqrt_10005(decimals), decimals)
    progress.finished("numerator")
    exponent = q_drop + q_two_exponent(0, terms)
    truncated = truncate_checked(pi_scaled(numerator, exponent, series.t, decimals))
    progress.finished("divide")
    if truncated is None:
        return None
    digits: str = truncated.digits()[1:]  # drop the leading "3"
    progress.finished("digits")
    return digits


def pi_decimals(
    num: int,
    *,
    workers: int = 2,
    on_progress: Callable[[float], None] | None = None,
    checkpoints: CheckpointConfig | None = None,
) -> str:
    """Exactly `num` decimals of pi after the point, truncated (not rounded).

    workers >= 2 uses one forked helper process for large `num` (two processes
    in total); workers == 1 stays in the calling process. With checkpoints, the parallel
    engine saves and resumes its work there and keeps the series state (see checkpoints.py).
    Raises ValueError for num < 1 and InsufficientMemoryError (a ValueError) when the host
    lacks memory.
    """
    out = io.BytesIO()
    write_pi_decimals(num, out, workers=workers, on_progress=on_progress, checkpoints=checkpoints)
    return out.getvalue().decode("ascii")


def write_pi_decimals(
    num: int,
    out: BinaryIO,
    *,
    workers: int = 2,
    on_progress: Callable[[float], None] | None = None,
    checkpoints: CheckpointConfig | None = None,
) -> None:
    """pi_decimals, written to `out` in pieces as they are converted (never one full-size
    string of them): the only way to a billion digits within the memory estimate."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    ensure_memory_for(num)
    report = on_progress if on_progress is not None else _ignore_progress
    parallel = workers >= 2 and num >= PARALLEL_FROM_DECIMALS and not mp.current_process().daemon
    guard = GUARD_DIGITS
    while True:
        truncate_checked = _truncator(guard)
        if parallel:
            if compute_parallel(num, guard, truncate_checked, report, out, checkpoints):
                return
        else:
            digits = _compute_serial(num, guard, truncate_checked, report)
            if digits is not None:
                out.write(digits.encode("ascii"))
                return
        guard *= 2  # a run of 0s or 9s straddles the cut: look further


def modelled_cost(num: int) -> float:
    """The work pi_decimals(num) reports its progress against (see phases.py)."""
    decimals = num + GUARD_DIGITS
    terms = terms_for_digits(decimals)
    if num >= PARALLEL_FROM_DECIMALS:
        return total_cost(decimals, (0, split_point(0, terms)), PARALLEL_PHASES)
    return total_cost(decimals, (0, terms), SERIAL_PHASES)


def _ignore_progress(fraction: float) -> None:
    pass
