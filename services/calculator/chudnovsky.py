"""Chudnovsky series by binary splitting on gmpy2 integers.

pi = 426880 * sqrt(10005) * Q(0, n) / T(0, n), with per-term factors
p(k) = (6k-5)(2k-1)(6k-1), q(k) = k^3 * 640320^3 / 24, a(k) = (-1)^k (A + B k).
Every q(k) (k >= 1) holds the factor 2^15; it is kept out of Q (q_reduced below is
Q / 2^(15 * terms)) so the big products are about 14 % smaller, and
T gets it back through cheap shifts.
"""

from typing import Any, NamedTuple, Protocol

import gmpy2
from gmpy2 import mpz

A = 13591409
B = 545140134
Q_TWO_EXPONENT = 15
Q_FULL_FACTOR = 640320**3 // 24
DIGITS_PER_TERM = 14.181647462725477
LOG2_10 = 3.321928094887362
LEAF_TERMS = 16  # below this, a Python loop beats recursion

Mpz = Any  # gmpy2 ships no type stubs


class Split(NamedTuple):
    """Binary-splitting state of terms [a, b); p is None when not needed."""

    p: Mpz | None
    q_reduced: Mpz
    t: Mpz


def terms_for_digits(decimals: int) -> int:
    return int(decimals / DIGITS_PER_TERM) + 2


def q_two_exponent(a: int, b: int) -> int:
    """Power of two removed from Q(a, b): 15 per term except term 0."""
    return Q_TWO_EXPONENT * (b - a - (1 if a == 0 else 0))


class LeafCount:
    """Terms this process has computed in leaves: what proves checkpointed work is not redone."""

    terms = 0


def _leaf(a: int, b: int) -> Split:
    LeafCount.terms += b - a
    # Horner from the right: T(k, b) = p(k) * (a(k) * Q(k+1, b) + T(k+1, b)).
    # The full q (with its 2^15) is used here; the power of two is shifted out once.
    p_total, q_full, t = mpz(1), mpz(1), mpz(0)
    for k in range(b - 1, a - 1, -1):
        if k == 0:
            t = A * q_full + t
            continue
        p_k = (6 * k - 5) * (2 * k - 1) * (6 * k - 1)
        t = p_k * ((-(A + B * k) if k & 1 else A + B * k) * q_full + t)
        q_full *= k * k * k * Q_FULL_FACTOR
        p_total *= p_k
    return Split(p_total, q_full >> q_two_exponent(a, b), t)


class NodeProgress(Protocol):
    """Told of each joined node of at least min_terms terms (see phases.EngineProgress)."""

    min_terms: int

    def node_done(self, a: int, b: int) -> None: ...


class NodeStore(Protocol):
    """Checkpoints of nodes of at least min_terms terms (see checkpoints.SubtreeCheckpoints)."""

    min_terms: int

    def load(self, a: int, b: int, need_p: bool) -> Split | None: ...

    def waiting(self, a: int, b: int, node: Split) -> None: ...

    def joined(self, a: int, mid: int, b: int, node: Split) -> None: ...


def split(
    a: int,
    b: int,
    need_p: bool = True,
    progress: NodeProgress | None = None,
    store: NodeStore | None = None,
) -> Split:
    """P, reduced Q and T of terms [a, b) (P may be left out when need_p is false)."""
    if b - a <= LEAF_TERMS:
        return _leaf(a, b)
    kept = store if store is not None and b - a >= store.min_terms else None
    if kept is not None and (loaded := kept.load(a, b, need_p)) is not None:
        return loaded
    mid = (a + b) // 2
    told = progress if progress is not None and b - a >= progress.min_terms else None
    left = split(a, mid, True, told, kept)
    if kept is not None:
        kept.waiting(a, mid, left)
    joined = join(left, split(mid, b, need_p, told, kept), q_two_exponent(mid, b))
    del left
    if kept is not None:
        kept.joined(a, mid, b, joined)
    if told is not None:
        told.node_done(a, b)
    return joined


def join(left: Split, right: Split, right_two_exponent: int) -> Split:
    assert left.p is not None
    t = ((left.t * right.q_reduced) << right_two_exponent) + left.p * right.t
    p = left.p * right.p if right.p is not None else None
    return Split(p, left.q_reduced * right.q_reduced, t)


def precision_bits(decimals: int) -> int:
    return int(decimals * LOG2_10) + 64


def _top_bits(value: Mpz, decimals: int) -> tuple[Mpz, int]:
    """(value >> drop, drop), keeping precision_bits(decimals) bits."""
    drop = max(0, value.bit_length() - precision_bits(decimals))
    return value >> drop, drop


def scaled_sqrt_10005(decimals: int) -> Mpz:
    """floor(sqrt(10005) * 10^decimals)."""
    return gmpy2.isqrt(10005 * mpz(10) ** (2 * decimals))


def pi_numerator(q_reduced: Mpz, sqrt_scaled: Mpz, decimals: int) -> tuple[Mpz, int]:
    """(v, e) with v * 2^e ~= 426880 * sqrt(10005) * 10^decimals * reduced Q."""
    q_top, q_drop = _top_bits(q_reduced, decimals)
    return 426880 * sqrt_scaled * q_top, q_drop


def pi_scaled(numerator: Mpz, numerator_exponent: int, t: Mpz, decimals: int) -> Mpz:
    """floor(pi * 10^decimals), off by at most 2, from numerator * 2^exponent / T.

    Both Q and T are cut to precision_bits(decimals) bits before the division:
    the relative error that adds, 2^-(bits - 2), is far below one unit.
    """
    t_top, t_drop = _top_bits(t, decimals)
    shift = numerator_exponent - t_drop
    if shift >= 0:
        return (numerator << shift) // t_top
    return numerator // (t_top << -shift)
