"""Hexadecimal digits of pi, from the decimal engine's digits.

floor(pi * 16^n) is floor(D * 16^n / 10^d) for D = floor(pi * 10^d) with enough decimals d:
the decimals' truncation error (< 1 unit of 10^-d) moves pi * 16^n by less than 16^n / 10^d,
which the guard decimals keep far below one hexadecimal unit. When the remainder is too close
to the next unit to decide, more guard decimals settle it (as the decimal engine does).
The conversion costs one multiplication and one division of numbers of the result's size, a
small part of the computation of the decimals themselves.
"""

from collections.abc import Callable
from typing import BinaryIO

from gmpy2 import mpz

from services.calculator.checkpoints import CheckpointConfig
from services.calculator.engine import pi_decimals
from services.shared.radix import decimals_needed

GUARD_DECIMALS = 12
WRITE_CHUNK_CHARS = 1 << 22  # encode piecewise: no second full-size copy of the digits


def decimals_for_hex(num: int, guard: int = GUARD_DECIMALS) -> int:
    """How many decimals pi_hex(num) computes."""
    return decimals_needed(num, 16) + guard


def pi_hex(
    num: int,
    *,
    workers: int = 2,
    on_progress: Callable[[float], None] | None = None,
    checkpoints: CheckpointConfig | None = None,
) -> str:
    """Exactly `num` hexadecimal digits of pi after the point, truncated, in lower case."""
    if isinstance(num, bool) or not isinstance(num, int) or num < 1:
        raise ValueError(f"num must be a positive integer, got {num!r}")
    guard = GUARD_DECIMALS
    while True:
        decimals = decimals_for_hex(num, guard)
        decimal_digits = pi_decimals(
            decimals, workers=workers, on_progress=on_progress, checkpoints=checkpoints
        )
        scaled = mpz("3" + decimal_digits)
        del decimal_digits
        decimal_unit = mpz(10) ** decimals
        hex_scaled, remainder = divmod(scaled << (4 * num), decimal_unit)
        # pi * 16^num lies in [hex_scaled + r, hex_scaled + r + 16^num / 10^d), r = rem / 10^d.
        if remainder + (mpz(1) << (4 * num)) <= decimal_unit:
            digits: str = hex_scaled.digits(16)
            return digits[1:]  # drop the leading "3"
        guard *= 2


def write_pi_hex(
    num: int,
    out: BinaryIO,
    *,
    on_progress: Callable[[float], None] | None = None,
    checkpoints: CheckpointConfig | None = None,
) -> None:
    """pi_hex(num), written to `out` in pieces."""
    digits = pi_hex(num, on_progress=on_progress, checkpoints=checkpoints)
    for start in range(0, len(digits), WRITE_CHUNK_CHARS):
        out.write(digits[start : start + WRITE_CHUNK_CHARS].encode("ascii"))
