"""What a computation of the parallel engine starts from, and the checkpoints it leaves.

The plan: which terms each process splits, given the stored series state (a computation for more
terms splits only the new ones; one for as many reads its two processes' splits as they were
left). The checkpoints of the splitting itself are in checkpoints.py; here are the results
after it (the worker's square root, the join's, the division's) and the notes the engine writes
on stderr for the calculator's log and for tests.
"""

import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from gmpy2 import mpz

from services.calculator.checkpoint_files import (
    UnreadableCheckpoint,
    bytes_on_disk,
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
from services.calculator.chudnovsky import Mpz, Split, terms_for_digits
from services.calculator.phases import PARALLEL_PHASES, EngineProgress, min_terms_for, split_cost

# Smaller computations keep no series state: from scratch they take well under a second.
SERIES_FROM_DECIMALS = 1_000_000


def note(line: str) -> None:
    """A line for the calculator's log (compute.py), beside the progress lines."""
    sys.stderr.write(f"note {line}\n")
    sys.stderr.flush()


def subtree_store(
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


def note_split(
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


@dataclass(frozen=True)
class Plan:
    """Which terms each process splits, and what earlier runs left to start from."""

    start: int  # terms [0, start) come from the stored series state
    mid: int  # the parent splits [start, mid), the worker [mid, terms)
    terms: int
    stored: StoredSeries | None
    # Where the two segments of the new series state [0, terms) are staged, if it is kept.
    series_staging: Path | None
    # A stored series state of [0, start) + [start, mid) + [mid, terms): the splits, done.
    roots: Path | None = None


def make_plan(
    decimals: int,
    checkpoints: CheckpointConfig | None,
    after_splitting: bool,
    split_point: Callable[[int, int], int],
) -> Plan:
    """split_point(start, terms): where the parent's range ends (parallel.split_point)."""
    needed = terms_for_digits(decimals)
    if checkpoints is None or after_splitting:
        return Plan(0, split_point(0, needed), needed, None, None)
    states = SeriesStates(checkpoints.directory, note)
    stored = states.usable(needed)
    if stored is not None and stored.terms >= needed and len(stored.segments) == 2:
        # As a computation of stored.terms terms left it: each process reads its own part.
        (_, mid), _ = stored.segments
        return Plan(0, mid, stored.terms, None, None, roots=stored.directory)
    start = stored.terms if stored is not None else 0
    terms = max(needed, start)
    keep = (
        checkpoints.keep_series
        and decimals >= SERIES_FROM_DECIMALS
        and terms > states.largest_terms()
    )
    staging = states.staging(terms) if keep else None
    return Plan(start, split_point(start, terms), terms, stored, staging)


def parent_progress(
    decimals: int,
    plan: Plan,
    split_point: Callable[[int, int], int],
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
        stored_mid = split_point(0, plan.start)
        stored_cost = split_cost(0, stored_mid, min_terms_for(0, stored_mid))
    return EngineProgress(
        decimals,
        (plan.start, plan.mid),
        PARALLEL_PHASES,
        report,
        stored_cost=stored_cost,
        done_at_start=found,
    )


def keep_segment(
    checkpoints: CheckpointConfig, staging: Path, a: int, b: int, segment: Split
) -> None:
    """A process's part of the new series state, staged until both parts are written."""
    SeriesStates(checkpoints.directory, note).write_segment(staging, a, b, segment)


def promote_series(checkpoints: CheckpointConfig, staging: Path, terms: int, decimals: int) -> None:
    SeriesStates(checkpoints.directory, note).promote(staging, terms)
    # The series state holds what the nodes of this run held (not the square root).
    for node_file in run_directory(checkpoints.directory, decimals).glob("*-*.node"):
        node_file.unlink(missing_ok=True)


def read_root(roots: Path | None, a: int, b: int) -> Split | None:
    """A process's whole split from the stored series state; None to compute it."""
    if roots is None:
        return None
    try:
        return read_node(roots / node_name(a, b), a, b)
    except UnreadableCheckpoint as error:
        note(f"series state ignored: {error}")
        return None


@dataclass(frozen=True)
class Joined:
    """What the division needs, once the splitting and the join are done:
    pi * 10^decimals ~= numerator * 2^exponent / t."""

    numerator: Mpz
    exponent: int
    t: Mpz


@dataclass(frozen=True)
class FinalStage:
    """A computation's last checkpoint after its splitting: the join's result (divided None)
    or the division's (joined None)."""

    joined: Joined | None = None
    divided: Mpz | None = None

    @property
    def phase(self) -> str:
        """The last phase (phases.PARALLEL_PHASES) whose result it holds."""
        return "join" if self.divided is None else "divide"

    @property
    def done(self) -> str:
        return "the join" if self.divided is None else "the division"


def _load_result(
    checkpoints: CheckpointConfig | None, decimals: int, name: str, count: int
) -> list[Mpz] | None:
    """The `count` numbers of the result `name` an earlier run saved, if readable."""
    if checkpoints is None:
        return None
    path = run_directory(checkpoints.directory, decimals) / f"{name}.node"
    if not path.exists():
        return None
    try:
        numbers = read_numbers(path, f"{name} {decimals}")
    except UnreadableCheckpoint as error:
        note(f"checkpoint ignored: {error}")
        return None
    if len(numbers) != count or None in numbers:
        note(f"checkpoint ignored: {path.name}: not the {name}'s result")
        return None
    return numbers


def _save_result(
    checkpoints: CheckpointConfig | None,
    decimals: int,
    name: str,
    numbers: list[Mpz],
    seconds_so_far: float,
    replaces_earlier: bool,
) -> bool:
    """Save a result, for a computation that has run longer than the interval; with
    replaces_earlier, every other checkpoint of the run is redundant then, and goes."""
    if checkpoints is None or seconds_so_far < checkpoints.interval_seconds:
        return False
    path = run_directory(checkpoints.directory, decimals) / f"{name}.node"
    # The worker saves its square root while the parent saves and replaces nodes.
    others = [f for f in path.parent.glob("*.node") if f != path]
    if bytes_on_disk(others) + encoded_size(numbers) > checkpoints.max_bytes:
        note(f"checkpoint skipped: over {checkpoints.max_bytes} bytes")
        return False
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_numbers(path, f"{name} {decimals}", numbers)
    except OSError as error:
        note(f"checkpoint not saved: {error}")
        return False
    for redundant in others if replaces_earlier else []:
        redundant.unlink(missing_ok=True)
    return True


def load_final_stage(checkpoints: CheckpointConfig | None, decimals: int) -> FinalStage | None:
    """The latest of the division's and the join's results an earlier run left, if readable."""
    if (divided := _load_result(checkpoints, decimals, "divide", 1)) is not None:
        return FinalStage(divided=divided[0])
    if (joined := _load_result(checkpoints, decimals, "join", 3)) is not None:
        numerator, exponent, t = joined
        return FinalStage(Joined(numerator, int(exponent), t))
    return None


def save_final_stage(
    checkpoints: CheckpointConfig | None, decimals: int, stage: FinalStage, seconds_so_far: float
) -> None:
    """The join's or the division's result: every earlier checkpoint of the run is redundant."""
    joined = stage.joined
    numbers = (
        [stage.divided] if joined is None else [joined.numerator, mpz(joined.exponent), joined.t]
    )
    if _save_result(checkpoints, decimals, stage.phase, numbers, seconds_so_far, True):
        note(f"checkpoint saved after {stage.done}")


def load_sqrt(checkpoints: CheckpointConfig | None, decimals: int) -> Mpz | None:
    """The worker's floor(sqrt(10005) * 10^decimals), if an earlier run saved it."""
    found = _load_result(checkpoints, decimals, "sqrt", 1)
    if found is None:
        return None
    note("square root loaded")
    return found[0]


def save_sqrt(
    checkpoints: CheckpointConfig | None, decimals: int, root: Mpz, seconds_so_far: float
) -> bool:
    """Kept until the join is done: a run resumed before then need not take it again (19 s
    of the worker's time at 200,000,000 decimals). True if saved."""
    return _save_result(checkpoints, decimals, "sqrt", [root], seconds_so_far, False)


def discard_run(checkpoints: CheckpointConfig | None, decimals: int) -> None:
    """The computation is done: its checkpoints are of no further use."""
    if checkpoints is not None:
        shutil.rmtree(run_directory(checkpoints.directory, decimals), ignore_errors=True)
