"""Two-process pipeline: a forked worker takes sqrt(10005), the right part of the
binary splitting, the numerator 426880 * sqrt * Q and half of the decimal
conversion; the parent takes the left part, T and the division.

Numbers cross the pipe as gmpy2.to_binary bytes (a memcpy, negligible next to
the arithmetic). The worker dies with its parent (PR_SET_PDEATHSIG) and is
killed by the parent on any exception, so it never outlives the computation.
"""

import multiprocessing as mp
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection

import gmpy2
from gmpy2 import mpz

from services.calculator.chudnovsky import (
    Mpz,
    pi_numerator,
    pi_scaled,
    q_two_exponent,
    scaled_sqrt_10005,
    split,
    terms_for_digits,
)
from services.calculator.phases import PARALLEL_PHASES, EngineProgress
from services.shared.runtime import die_with_parent

# The worker also takes the square root, so the parent gets more than half the
# terms; tuned so both finish the splitting together at 1M-10M decimals.
PARENT_TERM_SHARE = 0.57

TruncateChecked = Callable[[Mpz], Mpz | None]


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
    sqrt_scaled = scaled_sqrt_10005(decimals)
    right = split(mid, terms, need_p=False)
    _send(conn, right.q_reduced)
    _send(conn, right.t)
    left_q_reduced = _recv(conn)
    numerator, q_drop = pi_numerator(left_q_reduced * right.q_reduced, sqrt_scaled, decimals)
    del left_q_reduced, right, sqrt_scaled
    _send(conn, numerator)
    _send(conn, mpz(q_drop))
    del numerator
    low = _recv(conn)
    conn.send_bytes(low.digits().zfill(low_len).encode("ascii"))
    conn.close()


def parent_terms(terms: int) -> int:
    """How many of the terms the parent splits (the worker takes the rest)."""
    return int(terms * PARENT_TERM_SHARE)


def compute_parallel(
    num: int, guard: int, truncate_checked: TruncateChecked, report: Callable[[float], None]
) -> str | None:
    """Decimals of pi with one helper process; None if the guard digits were ambiguous."""
    decimals = num + guard
    terms = terms_for_digits(decimals)
    mid = parent_terms(terms)
    low_len = num // 2
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
        right_q_reduced = _recv(conn)
        right_t = _recv(conn)
        _send(conn, left.q_reduced)
        t = ((left.t * right_q_reduced) << q_two_exponent(mid, terms)) + left.p * right_t
        del left, right_q_reduced, right_t
        numerator = _recv(conn)
        exponent = int(_recv(conn)) + q_two_exponent(0, terms)
        progress.finished("join")
        truncated = truncate_checked(pi_scaled(numerator, exponent, t, decimals))
        del numerator, t
        progress.finished("divide")
        if truncated is None:
            return None
        high, low = divmod(truncated, mpz(10) ** low_len)
        del truncated
        progress.finished("cut")
        _send(conn, low)
        del low
        high_digits: str = high.digits()
        del high
        low_digits = conn.recv_bytes().decode("ascii")
        worker.join(timeout=10)
        progress.finished("digits")
        return high_digits[1:] + low_digits  # drop the leading "3"
    except EOFError:
        worker.join(timeout=1)
        raise RuntimeError(f"pi digit worker died (exit code {worker.exitcode})") from None
    finally:
        conn.close()
        if worker.is_alive():
            worker.kill()
        worker.join()
