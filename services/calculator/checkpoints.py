"""Checkpoints of a computation's binary splitting, and the series state kept between jobs.

A node of the splitting, P, Q and T of terms [a, b), is the same whichever computation needs it:
files are named by (a, b), in a directory named by the computation's decimals (pi-<decimals>),
so any run of the same computation, after a crash, finds what an earlier one saved. Each process
saves the completed part of its own range at intervals (the frontier: every finished node whose
sibling is not finished yet), and drops the files a larger saved node makes redundant.

The series state is P, Q and T of terms [0, N) of the largest computation done, as the two
segments its processes ended with (series-<N>/<a>-<b>.node); a later computation for more terms
starts from it, and one for as many terms skips the splitting.
"""

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from services.calculator.checkpoint_files import (
    UnreadableCheckpoint,
    encoded_size,
    read_numbers,
    sync_directory,
    write_numbers,
)
from services.calculator.chudnovsky import LEAF_TERMS, Split, join, q_two_exponent

Note = Callable[[str], None]

_NODE_FILE = re.compile(r"(\d+)-(\d+)\.node")
_SERIES_DIR = re.compile(r"series-(\d+)")
_STAGING_DIR = re.compile(r"series-\d+\.(\d+)\.tmp")
_RUN_DIR = re.compile(r"pi-(\d+)")
# A run's directory is named by num + guard digits; the guard doubles when it must.
_MAX_GUARD = 1024
# A stored series state this much larger than needed costs more to read than it saves.
_USABLE_SERIES_FACTOR = 2


@dataclass(frozen=True)
class CheckpointConfig:
    directory: Path
    interval_seconds: float
    max_bytes: int
    keep_series: bool = True


def run_directory(directory: Path, decimals: int) -> Path:
    return directory / f"pi-{decimals}"


def node_key(a: int, b: int) -> str:
    return f"node {a} {b}"


def node_name(a: int, b: int) -> str:
    return f"{a}-{b}.node"


def discard_computation(directory: Path, num: int) -> None:
    """Remove the checkpoints of the computation for `num` decimals (its job has ended)."""
    for run in _numbered(directory, _RUN_DIR):
        decimals = int(_RUN_DIR.fullmatch(run.name).group(1))  # type: ignore[union-attr]
        if num < decimals <= num + _MAX_GUARD:
            shutil.rmtree(run, ignore_errors=True)


def _numbered(directory: Path, pattern: re.Pattern[str]) -> Iterator[Path]:
    with contextlib.suppress(OSError):
        for entry in directory.iterdir():
            if pattern.fullmatch(entry.name):
                yield entry


def _is_running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _node_ranges(directory: Path) -> Iterator[tuple[int, int]]:
    for entry in _numbered(directory, _NODE_FILE):
        match = _NODE_FILE.fullmatch(entry.name)
        assert match is not None
        yield int(match.group(1)), int(match.group(2))


def read_node(path: Path, a: int, b: int) -> Split:
    """A node file, checked; UnreadableCheckpoint if torn, corrupt or not this node."""
    numbers = read_numbers(path, node_key(a, b))
    if len(numbers) != 3 or numbers[1] is None or numbers[2] is None:
        raise UnreadableCheckpoint(f"{path.name}: not a node")
    return Split(*numbers)


class SubtreeCheckpoints:
    """One process's checkpoints of its range of the splitting (see chudnovsky.NodeStore)."""

    def __init__(
        self,
        run_dir: Path,
        terms: tuple[int, int],
        min_terms: int,
        config: CheckpointConfig,
        max_bytes: int,
        note: Note,
    ) -> None:
        self.min_terms = max(min_terms, LEAF_TERMS + 1)
        self._dir = run_dir
        self._interval = config.interval_seconds
        self._max_bytes = max_bytes
        self._note = note
        self._frontier: dict[tuple[int, int], Split] = {}
        # Files of this range on disk, with their sizes: what the size bound counts.
        self._saved: dict[tuple[int, int], int] = {}
        low, high = terms
        for a, b in _node_ranges(run_dir):
            if low <= a and b <= high:
                with contextlib.suppress(OSError):
                    self._saved[a, b] = (run_dir / node_name(a, b)).stat().st_size
        self._last_save = time.monotonic()
        self.loaded_terms = 0
        self.saved_nodes = 0
        self._bound_noted = False
        # Saved with the first nodes: what the process took before its splitting (the
        # worker's square root), if that was too soon to save.
        self.save_first: Callable[[], object] | None = None

    def _path(self, a: int, b: int) -> Path:
        return self._dir / node_name(a, b)

    def found_cost(self, a: int, b: int, cost: Callable[[int, int], float]) -> float:
        """The cost of the work under [a, b) that files on disk hold (the files unchecked)."""
        if b - a < self.min_terms:
            return 0.0
        if (a, b) in self._saved:
            return cost(a, b)
        mid = (a + b) // 2
        return self.found_cost(a, mid, cost) + self.found_cost(mid, b, cost)

    def load(self, a: int, b: int, need_p: bool) -> Split | None:
        if (a, b) not in self._saved:
            return None
        try:
            node = read_node(self._path(a, b), a, b)
        except UnreadableCheckpoint as error:
            self._note(f"checkpoint ignored: {error}")
            self._forget(a, b)
            return None
        if need_p and node.p is None:
            return None
        self.loaded_terms += b - a
        self._drop_inside(a, b)
        return node

    def waiting(self, a: int, b: int, node: Split) -> None:
        """A finished node whose sibling is not finished yet."""
        self._frontier[a, b] = node

    def joined(self, a: int, mid: int, b: int, node: Split) -> None:
        self._frontier.pop((a, mid), None)
        if time.monotonic() - self._last_save >= self._interval:
            self._save_frontier(a, b, node)

    def _save_frontier(self, a: int, b: int, node: Split) -> None:
        if self.save_first is not None:
            self.save_first()
            self.save_first = None
        unsaved = [(r, n) for r, n in self._frontier.items() if r not in self._saved]
        for (low, high), split in [*unsaved, ((a, b), node)]:
            size = encoded_size(split)
            if sum(self._saved.values()) + size > self._max_bytes:
                if not self._bound_noted:
                    self._note(f"checkpoint skipped: over {self._max_bytes} bytes")
                    self._bound_noted = True
                continue
            try:
                self._saved[low, high] = write_numbers(
                    self._path(low, high), node_key(low, high), split
                )
            except OSError as error:  # a full disk costs the checkpoints, not the computation
                self._note(f"checkpoints stopped: {error}")
                self._interval = float("inf")
                return
            self.saved_nodes += 1
            self._drop_inside(low, high)
        self._last_save = time.monotonic()

    def _drop_inside(self, a: int, b: int) -> None:
        for low, high in list(self._saved):
            if a <= low and high <= b and (low, high) != (a, b):
                self._forget(low, high)

    def _forget(self, a: int, b: int) -> None:
        self._saved.pop((a, b), None)
        with contextlib.suppress(OSError):
            self._path(a, b).unlink()


@dataclass(frozen=True)
class StoredSeries:
    """A series state on disk: terms [0, terms) in contiguous segments."""

    directory: Path
    terms: int
    segments: tuple[tuple[int, int], ...]


class SeriesStates:
    """The stored series state: found, read (checked) and replaced by a larger one."""

    def __init__(self, directory: Path, note: Note) -> None:
        self._dir = directory
        self._note = note

    def usable(self, needed_terms: int) -> StoredSeries | None:
        """The largest complete state worth starting from for `needed_terms` terms."""
        found = []
        for entry in _numbered(self._dir, _SERIES_DIR):
            terms = int(entry.name.removeprefix("series-"))
            segments = tuple(sorted(_node_ranges(entry)))
            ends = [0] + [b for _, b in segments]
            if [a for a, _ in segments] == ends[:-1] and ends[-1] == terms and segments:
                found.append(StoredSeries(entry, terms, segments))
        fitting = [s for s in found if s.terms <= needed_terms * _USABLE_SERIES_FACTOR]
        return max(fitting, key=lambda s: s.terms, default=None)

    def largest_terms(self) -> int:
        names = _numbered(self._dir, _SERIES_DIR)
        return max((int(e.name.removeprefix("series-")) for e in names), default=0)

    def read(self, stored: StoredSeries) -> Split | None:
        """P, Q and T of [0, terms), or None if a segment fails its check (logged)."""
        state: Split | None = None
        for a, b in stored.segments:
            try:
                segment = read_node(stored.directory / node_name(a, b), a, b)
            except UnreadableCheckpoint as error:
                self._note(f"series state ignored: {error}")
                return None
            if segment.p is None:
                self._note(f"series state ignored: {a}-{b} has no P")
                return None
            state = segment if state is None else join(state, segment, q_two_exponent(a, b))
        return state

    def staging(self, terms: int) -> Path:
        """A directory of this process's own, where the new state's segments are written."""
        for entry in _numbered(self._dir, _STAGING_DIR):
            owner = int(entry.name.split(".")[1])
            if not _is_running(owner):  # left by a computation killed while storing
                shutil.rmtree(entry, ignore_errors=True)
        return self._dir / f"series-{terms}.{os.getpid()}.tmp"

    def write_segment(self, staging: Path, a: int, b: int, segment: Split) -> None:
        try:
            staging.mkdir(parents=True, exist_ok=True)
            write_numbers(staging / node_name(a, b), node_key(a, b), segment)
        except OSError as error:  # promote() then finds the state incomplete and drops it
            self._note(f"series state not stored: {error}")

    def promote(self, staging: Path, terms: int) -> None:
        """Make the staged segments the series state, replacing smaller ones."""
        final = self._dir / f"series-{terms}"
        segments = sorted(_node_ranges(staging))
        ends = [0] + [b for _, b in segments]
        if [a for a, _ in segments] != ends[:-1] or ends[-1] != terms:
            shutil.rmtree(staging, ignore_errors=True)
            return
        try:
            sync_directory(staging)
            staging.rename(final)
            sync_directory(self._dir)
        except OSError:  # another computation stored the same state meanwhile, or a full disk
            shutil.rmtree(staging, ignore_errors=True)
            return
        for entry in _numbered(self._dir, _SERIES_DIR):
            if int(entry.name.removeprefix("series-")) < terms:
                shutil.rmtree(entry, ignore_errors=True)
        self._note(f"series state stored: {terms} terms")
