"""Two-process pipeline: a forked worker takes sqrt(10005), the right part of the
binary splitting, the numerator 426880 * sqrt * Q and half of the decimal
conversion; the parent takes the left part, T and the division.

Numbers cross the pipe as gmpy2.to_binary bytes (a memcpy, negligible next to
the arithmetic). The worker dies with its parent (PR_SET_PDEATHSIG) and is
killed by the parent on any exception, so it never outlives the computation.
"""

import multiprocessing as mp
import os
import shutil
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path

import gmpy2
from gmpy2 import mpz

from services.calculator.checkpoint_files import (
    UnreadableCheckpoint,
    encoded_size,
    read_numbers,
    write_numbers,
)
from services.calculator.checkpoints import (
    CheckpointConfig,
    SeriesStates,
    StoredSeries,
    SubtreeCheckpoints,
    node_name,
    read_node,
    run_directory,
)
from services.calculator.chudnovsky import (
    LeafCount,
    Mpz,
    Split,
    join,
    pi_numerator,
    pi_scaled,
    q_two_exponent,
    scaled_sqrt_10005,
    split,
    terms_for_digits,
)
from services.calculator.phases import PARALLEL_PHASES, EngineProgress, min_terms_for, split_cost
from services.shared.runtime import die_with_parent

# The worker also takes the square root, so the parent gets more than half the
# terms; tuned so both finish the splitting together at 1M-10M decimals.
PARENT_TERM_SHARE = 0.57
# Smaller computations keep no series state: from scratch they take well under a second.
SERIES_FROM_DECIMALS = 1_000_000

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


@dataclass(frozen=True)
class _WorkerPlan:
    mid: int
    terms: int
    decimals: int
    low_len: int
    # The division's result was found in a checkpoint: only the conversion is left to do.
    after_division: bool
    checkpoints: CheckpointConfig | None
    # Where the worker writes its segment of the series state (with P), if it is kept.
    series_staging: Path | None
    # A stored series state whose segments are the two processes' splits, done already.
    roots: Path | None


def _worker_main(conn: Connection, parent_pid: int, plan: _WorkerPlan) -> None:
    _detach_from_parent_signals(parent_pid)
    if not plan.after_division:
        _worker_split(conn, plan)
    low = _recv(conn)
    conn.send_bytes(low.digits().zfill(plan.low_len).encode("ascii"))
    conn.close()


def _worker_split(conn: Connection, plan: _WorkerPlan) -> None:
    decimals, mid, terms = plan.decimals, plan.mid, plan.terms
    sqrt_scaled = scaled_sqrt_10005(decimals)
    store = _subtree_store(plan.checkpoints, decimals, (mid, terms), share=0.5)
    leaves_before = LeafCount.terms
    right = _read_root(plan.roots, mid, terms)
    if right is None:
        right = split(mid, terms, need_p=plan.series_staging is not None, store=store)
    if plan.series_staging is not None:
        assert plan.checkpoints is not None
        SeriesStates(plan.checkpoints.directory, note).write_segment(
            plan.series_staging, mid, terms, right
        )
        right = right._replace(p=None)  # stored; not needed for the rest
    if plan.checkpoints is not None:
        from_series = terms - mid if plan.roots is not None else 0
        _note_split("worker", (mid, terms), LeafCount.terms - leaves_before, store, from_series)
    _send(conn, right.q_reduced)
    _send(conn, right.t)
    left_q_reduced = _recv(conn)
    numerator, q_drop = pi_numerator(left_q_reduced * right.q_reduced, sqrt_scaled, decimals)
    del left_q_reduced, right, sqrt_scaled
    _send(conn, numerator)
    _send(conn, mpz(q_drop))
    del numerator


def note(line: str) -> None:
    """A line for the calculator's log (compute.py), beside the progress lines."""
    sys.stderr.write(f"note {line}\n")
    sys.stderr.flush()


def _subtree_store(
    config: CheckpointConfig | None, decimals: int, terms: tuple[int, int], share: float
) -> SubtreeCheckpoints | None:
    if config is None or terms[0] == terms[1]:
        return None
    run_dir = run_directory(config.directory, decimals)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        note(f"checkpoints stopped: {error}")
        return None
    max_bytes = int(config.max_bytes * share)
    return SubtreeCheckpoints(run_dir, terms, min_terms_for(*terms), config, max_bytes, note)


def _note_split(
    role: str,
    terms: tuple[int, int],
    computed: int,
    store: SubtreeCheckpoints | None,
    from_series: int,
) -> None:
    """How much of its range a process computed, and how much it found done: what tests read."""
    loaded = store.loaded_terms if store is not None else 0
    saved = store.saved_nodes if store is not None else 0
    note(
        f"split {role}: terms {terms[0]}-{terms[1]}, computed {computed}, loaded {loaded},"
        f" from series {from_series}, checkpoints saved {saved}"
    )


def parent_terms(terms: int) -> int:
    """How many of the terms the parent splits (the worker takes the rest)."""
    return int(terms * PARENT_TERM_SHARE)


def compute_parallel(
    num: int,
    guard: int,
    truncate_checked: TruncateChecked,
    report: Callable[[float], None],
    checkpoints: CheckpointConfig | None = None,
) -> str | None:
    """Decimals of pi with one helper process; None if the guard digits were ambiguous.

    With checkpoints, it starts from what earlier runs left: the division's result, the nodes
    of the splitting, the stored series state; and leaves checkpoints of its own as it goes."""
    decimals = num + guard
    divided = _load_divided(checkpoints, decimals)
    plan = _plan(decimals, checkpoints, after_division=divided is not None)
    low_len = num // 2
    ctx = mp.get_context("fork")
    conn, child_conn = ctx.Pipe()
    worker_plan = _WorkerPlan(
        plan.mid,
        plan.terms,
        decimals,
        low_len,
        divided is not None,
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
        if divided is None:
            store = _subtree_store(checkpoints, decimals, (plan.start, plan.mid), share=0.5)
            progress = _parent_progress(decimals, plan, store, report)
            scaled = _split_join_divide(conn, decimals, plan, store, progress, checkpoints)
            if (
                checkpoints is not None
                and time.monotonic() - started >= checkpoints.interval_seconds
            ):
                _save_divided(checkpoints, decimals, scaled)
        else:
            note("resumed after the division")
            progress = EngineProgress(
                decimals, (plan.start, plan.mid), PARALLEL_PHASES, report, resume_after="divide"
            )
            scaled, divided = divided, None
        truncated = truncate_checked(scaled)
        del scaled
        progress.finished("divide")
        if truncated is None:
            _discard_run(checkpoints, decimals)
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
        _discard_run(checkpoints, decimals)
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


def _split_join_divide(
    conn: Connection,
    decimals: int,
    plan: "_Plan",
    store: SubtreeCheckpoints | None,
    progress: EngineProgress,
    checkpoints: CheckpointConfig | None,
) -> Mpz:
    """The parent's side of the splitting and the join; returns ~floor(pi * 10^decimals)."""
    start, mid, terms = plan.start, plan.mid, plan.terms
    leaves_before = LeafCount.terms
    left = _read_root(plan.roots, start, mid)
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
        SeriesStates(checkpoints.directory, note).write_segment(plan.series_staging, 0, mid, left)
    if checkpoints is not None:
        from_series = mid if plan.roots is not None else start
        _note_split("parent", (start, mid), LeafCount.terms - leaves_before, store, from_series)
    progress.finished("split")
    right_q_reduced = _recv(conn)
    right_t = _recv(conn)  # the worker has written its segment of the series state by now
    if plan.series_staging is not None:
        assert checkpoints is not None
        SeriesStates(checkpoints.directory, note).promote(plan.series_staging, terms)
        # The series state holds what the nodes of this run held.
        for node_file in run_directory(checkpoints.directory, decimals).glob("*.node"):
            node_file.unlink(missing_ok=True)
    _send(conn, left.q_reduced)
    t = ((left.t * right_q_reduced) << q_two_exponent(mid, terms)) + left.p * right_t
    del left, right_q_reduced, right_t
    numerator = _recv(conn)
    exponent = int(_recv(conn)) + q_two_exponent(0, terms)
    progress.finished("join")
    return pi_scaled(numerator, exponent, t, decimals)


@dataclass(frozen=True)
class _Plan:
    """Which terms each process splits, and what earlier runs left to start from."""

    start: int  # terms [0, start) come from the stored series state
    mid: int  # the parent splits [start, mid), the worker [mid, terms)
    terms: int
    stored: StoredSeries | None
    # Where the two segments of the new series state [0, terms) are staged, if it is kept.
    series_staging: Path | None
    # A stored series state of [0, start) + [start, mid) + [mid, terms): the splits, done.
    roots: Path | None = None


def _plan(decimals: int, checkpoints: CheckpointConfig | None, after_division: bool) -> _Plan:
    needed = terms_for_digits(decimals)
    if checkpoints is None or after_division:
        return _Plan(0, parent_terms(needed), needed, None, None)
    states = SeriesStates(checkpoints.directory, note)
    stored = states.usable(needed)
    if stored is not None and stored.terms >= needed and len(stored.segments) == 2:
        # As a computation of stored.terms terms left it: each process reads its own part.
        (_, mid), _ = stored.segments
        return _Plan(0, mid, stored.terms, None, None, roots=stored.directory)
    start = stored.terms if stored is not None else 0
    terms = max(needed, start)
    keep = (
        checkpoints.keep_series
        and decimals >= SERIES_FROM_DECIMALS
        and terms > states.largest_terms()
    )
    staging = states.staging(terms) if keep else None
    return _Plan(start, start + parent_terms(terms - start), terms, stored, staging)


def _parent_progress(
    decimals: int,
    plan: _Plan,
    store: SubtreeCheckpoints | None,
    report: Callable[[float], None],
) -> EngineProgress:
    min_terms = min_terms_for(plan.start, plan.mid)
    found = 0.0
    if plan.roots is not None:
        found = split_cost(plan.start, plan.mid, min_terms)
    elif store is not None:  # files an earlier run saved: counted as done from the start
        found = store.found_cost(plan.start, plan.mid, lambda a, b: split_cost(a, b, min_terms))
    stored_cost = 0.0
    if plan.start:
        stored_mid = parent_terms(plan.start)
        stored_cost = split_cost(0, stored_mid, min_terms_for(0, stored_mid))
    return EngineProgress(
        decimals,
        (plan.start, plan.mid),
        PARALLEL_PHASES,
        report,
        stored_cost=stored_cost,
        done_at_start=found,
    )


def _interval(checkpoints: CheckpointConfig | None) -> float:
    return checkpoints.interval_seconds if checkpoints is not None else float("inf")


def _read_root(roots: Path | None, a: int, b: int) -> Split | None:
    """A process's whole split from the stored series state; None to compute it."""
    if roots is None:
        return None
    try:
        return read_node(roots / node_name(a, b), a, b)
    except UnreadableCheckpoint as error:
        note(f"series state ignored: {error}")
        return None


def _divided_path(checkpoints: CheckpointConfig, decimals: int) -> Path:
    return run_directory(checkpoints.directory, decimals) / "divided.node"


def _load_divided(checkpoints: CheckpointConfig | None, decimals: int) -> Mpz | None:
    if checkpoints is None:
        return None
    path = _divided_path(checkpoints, decimals)
    if not path.exists():
        return None
    try:
        (scaled,) = read_numbers(path, f"divided {decimals}")
    except (UnreadableCheckpoint, ValueError) as error:
        note(f"checkpoint ignored: {error}")
        return None
    return scaled


def _save_divided(checkpoints: CheckpointConfig, decimals: int, scaled: Mpz) -> None:
    path = _divided_path(checkpoints, decimals)
    in_use = sum(f.stat().st_size for f in path.parent.glob("*.node"))
    if in_use + encoded_size([scaled]) > checkpoints.max_bytes:
        note(f"checkpoint skipped: over {checkpoints.max_bytes} bytes")
        return
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_numbers(path, f"divided {decimals}", [scaled])
    except OSError as error:
        note(f"checkpoint not saved: {error}")


def _discard_run(checkpoints: CheckpointConfig | None, decimals: int) -> None:
    """The computation is done: its checkpoints are of no further use."""
    if checkpoints is not None:
        shutil.rmtree(run_directory(checkpoints.directory, decimals), ignore_errors=True)
