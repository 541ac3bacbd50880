"""Two-process pipeline: a forked worker takes sqrt(10005), the right part of the
binary splitting, the numerator 426880 * sqrt * Q and half of the decimal
conversion; the parent takes the left part, T and the division, and writes the
digits out: its half, then the worker's as it sends them.

After the splitting every number is cut to the result's precision (truncated.py)
and dropped as soon as it is used: the final stage then needs a few times the
result's size, not the series'.

Numbers cross the pipe as gmpy2.to_binary bytes (a memcpy, negligible next to
the arithmetic). The worker dies with its parent (PR_SET_PDEATHSIG) and is
killed by the parent on any exception, so it never outlives the computation.
"""

import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import BinaryIO

import gmpy2
from gmpy2 import mpz

from services.calculator.chudnovsky import (
    Mpz,
    pi_numerator,
    pi_scaled,
    precision_bits,
    q_two_exponent,
    scaled_sqrt_10005,
    split,
    terms_for_digits,
)
from services.calculator.phases import PARALLEL_PHASES, EngineProgress
from services.calculator.truncated import Truncated
from services.shared.runtime import die_with_parent

# The worker also takes the square root, so the parent gets more than half the
# terms; tuned so both finish the splitting together at 1M-10M decimals.
PARENT_TERM_SHARE = 0.57

TruncateChecked = Callable[[Mpz], Mpz | None]
# Digits are written in pieces of this many: never a second full-size copy of them.
DIGITS_PIECE = 1 << 22


def _send(conn: Connection, value: Mpz) -> None:
    conn.send_bytes(gmpy2.to_binary(value))


def _recv(conn: Connection) -> Mpz:
    return gmpy2.from_binary(conn.recv_bytes())


def _detach_from_parent_signals(parent_pid: int) -> None:
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent_pid:  # parent died before prctl took effect
        os._exit(1)
    # Handlers and the wakeup fd of an event loop in the parent are not ours.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent kills us on Ctrl-C


def _worker_main(
    conn: Connection, parent_pid: int, mid: int, terms: int, decimals: int, low_len: int
) -> None:
    _detach_from_parent_signals(parent_pid)
    bits = working_bits(decimals)
    sqrt_scaled = scaled_sqrt_10005(decimals)
    right = split(mid, terms, need_p=False)
    right_q = Truncated.of(right.q_reduced, bits)
    right_t = Truncated.of(right.t, bits)
    del right
    _send_truncated(conn, right_q)
    _send_truncated(conn, right_t)
    del right_t
    q = _recv_truncated(conn).times(right_q, bits)
    del right_q
    numerator, q_drop = pi_numerator(q.mantissa, sqrt_scaled, decimals)
    q_drop += q.exponent
    del q, sqrt_scaled
    _send(conn, numerator)
    conn.send(q_drop)
    del numerator
    low = _recv(conn)
    low_digits: str = low.digits()
    del low
    _send_digits(conn, low_digits, low_len)
    conn.close()


def _send_digits(conn: Connection, digits: str, width: int) -> None:
    """The digits, zero-padded to width, in pieces; an empty piece ends them."""
    if len(digits) < width:
        conn.send_bytes(b"0" * (width - len(digits)))
    for start in range(0, len(digits), DIGITS_PIECE):
        conn.send_bytes(digits[start : start + DIGITS_PIECE].encode("ascii"))
    conn.send_bytes(b"")


def _send_truncated(conn: Connection, value: Truncated) -> None:
    _send(conn, value.mantissa)
    conn.send(value.exponent)


def _recv_truncated(conn: Connection) -> Truncated:
    mantissa = _recv(conn)
    exponent: int = conn.recv()
    return Truncated(mantissa, exponent)


def working_bits(decimals: int) -> int:
    """Bits kept of Q, T and their factors after the splitting: the result's precision and a
    margin, so the cuts add an error far below the one pi_scaled already allows for."""
    return precision_bits(decimals) + 32


def parent_terms(terms: int) -> int:
    """How many of the terms the parent splits (the worker takes the rest)."""
    return int(terms * PARENT_TERM_SHARE)


def compute_parallel(
    num: int,
    guard: int,
    truncate_checked: TruncateChecked,
    report: Callable[[float], None],
    out: BinaryIO,
) -> bool:
    """Writes the decimals of pi with one helper process; False (nothing written) if the guard
    digits were ambiguous."""
    decimals = num + guard
    terms = terms_for_digits(decimals)
    mid = parent_terms(terms)
    low_len = num // 2
    bits = working_bits(decimals)
    ctx = mp.get_context("fork")
    conn, child_conn = ctx.Pipe()
    worker = ctx.Process(
        target=_worker_main,
        args=(child_conn, os.getpid(), mid, terms, decimals, low_len),
        name="pi-digits-worker",
        daemon=True,
    )
    worker.start()
    child_conn.close()
    progress = EngineProgress(decimals, (0, mid), PARALLEL_PHASES, report)
    try:
        left = split(0, mid, need_p=True, progress=progress)
        progress.finished("split")
        left_t = Truncated.of(left.t, bits).shifted(q_two_exponent(mid, terms))
        left_p = Truncated.of(left.p, bits)
        left_q = Truncated.of(left.q_reduced, bits)
        del left
        right_q = _recv_truncated(conn)
        right_t = _recv_truncated(conn)
        _send_truncated(conn, left_q)
        del left_q
        # T(0, n) = T(0, mid) * Q(mid, n) * 2^e + P(0, mid) * T(mid, n), each to `bits` bits
        t = left_t.times(right_q, bits)
        del left_t, right_q
        t = t.plus(left_p.times(right_t, bits), bits)
        del left_p, right_t
        numerator = _recv(conn)
        exponent: int = conn.recv() + q_two_exponent(0, terms) - t.exponent
        progress.finished("join")
        truncated = truncate_checked(pi_scaled(numerator, exponent, t.mantissa, decimals))
        del numerator, t
        progress.finished("divide")
        if truncated is None:
            return False
        high, low = divmod(truncated, mpz(10) ** low_len)
        del truncated
        progress.finished("cut")
        _send(conn, low)
        del low
        high_digits: str = high.digits()
        del high
        _write_digits(high_digits, out)
        del high_digits
        while piece := conn.recv_bytes():
            out.write(piece)
        worker.join(timeout=10)
        progress.finished("digits")
        return True
    except EOFError:
        worker.join(timeout=1)
        raise RuntimeError(f"pi digit worker died (exit code {worker.exitcode})") from None
    finally:
        conn.close()
        if worker.is_alive():
            worker.kill()
        worker.join()


def _write_digits(digits: str, out: BinaryIO) -> None:
    """The digits but the first (the 3 before the point), in pieces."""
    for start in range(1, len(digits), DIGITS_PIECE):
        out.write(digits[start : start + DIGITS_PIECE].encode("ascii"))
