"""Two-process pipeline: a forked worker takes sqrt(10005), the right part of the
binary splitting, the numerator 426880 * sqrt * Q and half of the decimal
conversion; the parent takes the left part, T and the division, and writes the
digits out: its half, then the worker's as it sends them.

After the splitting every number is cut to the result's precision (truncated.py)
and dropped as soon as it is used: the final stage then needs a few times the
result's size, not the series'. With checkpoints (resume.py), both processes
start from what an earlier run left and leave checkpoints of their own.

Numbers cross the pipe as gmpy2.to_binary bytes (a memcpy, negligible next to
the arithmetic). The worker dies with its parent (PR_SET_PDEATHSIG) and is
killed by the parent on any exception, so it never outlives the computation.
"""

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import BinaryIO

import gmpy2
from gmpy2 import mpz

from services.calculator.checkpoints import CheckpointConfig, SeriesStates, SubtreeCheckpoints
from services.calculator.chudnovsky import (
    LeafCount,
    Mpz,
    join,
    pi_numerator,
    pi_scaled,
    precision_bits,
    q_two_exponent,
    scaled_sqrt_10005,
    split,
)
from services.calculator.phases import PARALLEL_PHASES, EngineProgress, balanced_mid
from services.calculator.resume import (
    FinalStage,
    Joined,
    Plan,
    discard_run,
    keep_segment,
    load_final_stage,
    load_sqrt,
    make_plan,
    note,
    note_split,
    parent_progress,
    promote_series,
    read_root,
    save_final_stage,
    save_sqrt,
    subtree_store,
)
from services.calculator.truncated import Truncated
from services.shared.runtime import die_with_parent

# The worker also takes the square root, so the parent gets more than half the
# terms; tuned so both finish the splitting together at 1M-10M decimals (and 200M).
PARENT_TERM_SHARE = 0.57

TruncateChecked = Callable[[Mpz], Mpz | None]
# Digits are written in pieces of this many: never a second full-size copy of them.
DIGITS_PIECE = 1 << 22


def _send(conn: Connection, value: Mpz) -> None:
    conn.send_bytes(gmpy2.to_binary(value))


def _recv(conn: Connection) -> Mpz:
    return gmpy2.from_binary(conn.recv_bytes())


def _send_truncated(conn: Connection, value: Truncated) -> None:
    _send(conn, value.mantissa)
    conn.send(value.exponent)


def _recv_truncated(conn: Connection) -> Truncated:
    mantissa = _recv(conn)
    exponent: int = conn.recv()
    return Truncated(mantissa, exponent)


def _send_digits(conn: Connection, digits: str, width: int) -> None:
    """The digits, zero-padded to width, in pieces; an empty piece ends them."""
    if len(digits) < width:
        conn.send_bytes(b"0" * (width - len(digits)))
    for start in range(0, len(digits), DIGITS_PIECE):
        conn.send_bytes(digits[start : start + DIGITS_PIECE].encode("ascii"))
    conn.send_bytes(b"")


def working_bits(decimals: int) -> int:
    """Bits kept of Q, T and their factors after the splitting: the result's precision and a
    margin, so the cuts add an error far below the one pi_scaled already allows for."""
    return precision_bits(decimals) + 32


def _detach_from_parent_signals(parent_pid: int) -> None:
    die_with_parent(signal.SIGKILL)
    if os.getppid() != parent_pid:  # parent died before prctl took effect
        os._exit(1)
    # Handlers and the wakeup fd of an event loop in the parent are not ours.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent kills us on Ctrl-C


@dataclass(frozen=True)
class _WorkerPlan:
    mid: int
    terms: int
    decimals: int
    low_len: int
    # The join's or the division's result was found in a checkpoint: the worker has only its
    # half of the conversion left to do.
    after_splitting: bool
    checkpoints: CheckpointConfig | None
    # Where the worker writes its segment of the series state (with P), if it is kept.
    series_staging: Path | None
    # A stored series state whose segments are the two processes' splits, done already.
    roots: Path | None


def _worker_main(conn: Connection, parent_pid: int, plan: _WorkerPlan) -> None:
    _detach_from_parent_signals(parent_pid)
    if not plan.after_splitting:
        _worker_split(conn, plan)
    low = _recv(conn)
    low_digits: str = low.digits()
    del low
    _send_digits(conn, low_digits, plan.low_len)
    conn.close()


def _worker_split(conn: Connection, plan: _WorkerPlan) -> None:
    decimals, mid, terms = plan.decimals, plan.mid, plan.terms
    bits = working_bits(decimals)
    started = time.monotonic()
    sqrt_scaled = load_sqrt(plan.checkpoints, decimals)
    sqrt_saved = sqrt_scaled is not None
    if sqrt_scaled is None:
        sqrt_scaled = scaled_sqrt_10005(decimals)
        sqrt_saved = save_sqrt(plan.checkpoints, decimals, sqrt_scaled, time.monotonic() - started)
    store = subtree_store(plan.checkpoints, decimals, (mid, terms), share=0.5)
    if store is not None and not sqrt_saved:  # taken too soon: saved with the first nodes
        root, checkpoints = sqrt_scaled, plan.checkpoints
        store.save_first = lambda: save_sqrt(
            checkpoints, decimals, root, time.monotonic() - started
        )
    leaves_before = LeafCount.terms
    right = read_root(plan.roots, mid, terms)
    if right is None:
        right = split(mid, terms, need_p=plan.series_staging is not None, store=store)
    if plan.series_staging is not None:
        assert plan.checkpoints is not None
        keep_segment(plan.checkpoints, plan.series_staging, mid, terms, right)
    if plan.checkpoints is not None:
        from_series = terms - mid if plan.roots is not None else 0
        note_split("worker", (mid, terms), LeafCount.terms - leaves_before, store, from_series)
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


def split_point(start: int, terms: int) -> int:
    """Where the parent's range [start, mid) of the splitting ends and the worker's [mid, terms)
    begins; start > 0: after a stored series state, which the parent also joins."""
    if start == 0:
        return int(terms * PARENT_TERM_SHARE)
    return balanced_mid(start, terms)


def compute_parallel(
    num: int,
    guard: int,
    truncate_checked: TruncateChecked,
    report: Callable[[float], None],
    out: BinaryIO,
    checkpoints: CheckpointConfig | None = None,
) -> bool:
    """Writes the decimals of pi with one helper process; False (nothing written) if the guard
    digits were ambiguous.

    With checkpoints, it starts from what earlier runs left: the division's or the join's result,
    the nodes of the splitting and the square root, the stored series state; and leaves
    checkpoints of its own as it goes."""
    decimals = num + guard
    found = load_final_stage(checkpoints, decimals)
    plan = make_plan(decimals, checkpoints, found is not None, split_point)
    low_len = num // 2
    ctx = mp.get_context("fork")
    conn, child_conn = ctx.Pipe()
    worker_plan = _WorkerPlan(
        plan.mid,
        plan.terms,
        decimals,
        low_len,
        found is not None,
        checkpoints,
        plan.series_staging,
        plan.roots,
    )
    worker = ctx.Process(
        target=_worker_main,
        args=(child_conn, os.getpid(), worker_plan),
        name="pi-digits-worker",
        daemon=True,
    )
    worker.start()
    child_conn.close()
    started = time.monotonic()
    try:
        if found is None:
            store = subtree_store(checkpoints, decimals, (plan.start, plan.mid), share=0.5)
            progress = parent_progress(decimals, plan, split_point, store, report)
            found = FinalStage(_split_and_join(conn, decimals, plan, store, progress, checkpoints))
            save_final_stage(checkpoints, decimals, found, time.monotonic() - started)
            progress.finished("join")  # reported once saved, as every phase
        else:
            note(f"resumed after {found.done}")
            progress = EngineProgress(
                decimals, (plan.start, plan.mid), PARALLEL_PHASES, report, resume_after=found.phase
            )
        scaled = _divided(found, decimals, checkpoints, started)
        del found
        truncated = truncate_checked(scaled)
        del scaled
        progress.finished("divide")
        if truncated is None:
            discard_run(checkpoints, decimals)
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
        discard_run(checkpoints, decimals)
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


def _divided(
    stage: FinalStage, decimals: int, checkpoints: CheckpointConfig | None, started: float
) -> Mpz:
    """~floor(pi * 10^decimals): the division's result, found in a checkpoint or computed."""
    if stage.joined is None:
        return stage.divided
    joined = stage.joined
    scaled = pi_scaled(joined.numerator, joined.exponent, joined.t, decimals)
    save_final_stage(checkpoints, decimals, FinalStage(divided=scaled), time.monotonic() - started)
    return scaled


def _write_digits(digits: str, out: BinaryIO) -> None:
    """The digits but the first (the 3 before the point), in pieces."""
    for start in range(1, len(digits), DIGITS_PIECE):
        out.write(digits[start : start + DIGITS_PIECE].encode("ascii"))


def _split_and_join(
    conn: Connection,
    decimals: int,
    plan: Plan,
    store: SubtreeCheckpoints | None,
    progress: EngineProgress,
    checkpoints: CheckpointConfig | None,
) -> Joined:
    """The parent's side of the splitting and the join: what the division needs."""
    start, mid, terms = plan.start, plan.mid, plan.terms
    leaves_before = LeafCount.terms
    left = read_root(plan.roots, start, mid)
    if left is None:
        left = split(start, mid, need_p=True, progress=progress, store=store)
    if plan.stored is not None:
        assert checkpoints is not None
        state = SeriesStates(checkpoints.directory, note).read(plan.stored)
        if state is None:  # unreadable after all: compute those terms too
            state = split(0, start, need_p=True)
        left = join(state, left, q_two_exponent(start, mid))
        del state
    if plan.series_staging is not None:
        assert checkpoints is not None
        keep_segment(checkpoints, plan.series_staging, 0, mid, left)
    if checkpoints is not None:
        from_series = mid if plan.roots is not None else start
        note_split("parent", (start, mid), LeafCount.terms - leaves_before, store, from_series)
    progress.finished("split")
    bits = working_bits(decimals)
    right_q = _recv_truncated(conn)
    right_t = _recv_truncated(conn)  # the worker has written its segment of the series state by now
    if plan.series_staging is not None:
        assert checkpoints is not None
        promote_series(checkpoints, plan.series_staging, terms, decimals)
    assert left.p is not None
    left_t = Truncated.of(left.t, bits).shifted(q_two_exponent(mid, terms))
    left_p = Truncated.of(left.p, bits)
    left_q = Truncated.of(left.q_reduced, bits)
    del left
    _send_truncated(conn, left_q)
    del left_q
    # T(0, n) = T(0, mid) * Q(mid, n) * 2^e + P(0, mid) * T(mid, n), each to `bits` bits
    t = left_t.times(right_q, bits)
    del left_t, right_q
    t = t.plus(left_p.times(right_t, bits), bits)
    del left_p, right_t
    numerator = _recv(conn)
    exponent: int = conn.recv() + q_two_exponent(0, terms) - t.exponent
    return Joined(numerator, exponent, t.mantissa)
