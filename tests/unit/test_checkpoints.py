"""Checkpoints of the digit engine: a real engine process killed with -9 resumes from them, a
torn or corrupt one is ignored, the stored series state is extended, and the files stay within
their bound and go when the computation ends.

Digits are checked against the engine's own run from scratch (2,000,000 decimals) and against
mpmath (the small sizes)."""

import multiprocessing as mp
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import mpmath
import pytest
from gmpy2 import mpz

from services.calculator import parallel, resume
from services.calculator.checkpoint_files import (
    UnreadableCheckpoint,
    bytes_on_disk,
    read_numbers,
    write_numbers,
)
from services.calculator.checkpoints import (
    CheckpointConfig,
    SubtreeCheckpoints,
    discard_computation,
    run_directory,
)
from services.calculator.chudnovsky import LeafCount, Split, split, terms_for_digits
from services.calculator.engine import GUARD_DIGITS, pi_decimals
from tests.support import wait_until

NUM = 2_000_000
PI_DIGITS_BIN = Path(sys.executable).parent / "pi-digits"
# Both processes report what they computed and found: "split parent: terms 0-80387, ..."
SPLIT_NOTE = re.compile(
    r"note split (parent|worker): terms (\d+)-(\d+), computed (\d+), loaded (\d+),"
    r" from series (\d+)"
)


def mpmath_decimals(num: int) -> str:
    with mpmath.workdps(num + 30):
        return str(mpmath.pi)[2 : 2 + num]


@pytest.fixture(scope="module")
def from_scratch() -> str:
    """The engine's own run from scratch, without checkpoints."""
    return pi_decimals(NUM)


def engine_command(num: int, directory: Path, interval: float = 0.02) -> list[str]:
    return [
        str(PI_DIGITS_BIN),
        str(num),
        "--progress",
        f"--checkpoint-dir={directory}",
        f"--checkpoint-interval={interval}",
    ]


def run_engine(num: int, directory: Path) -> tuple[str, str]:
    done = subprocess.run(engine_command(num, directory), capture_output=True, check=True)
    output = done.stdout.decode()
    assert output.startswith("3.")
    return output[2:], done.stderr.decode()


def progress_of(stderr: str) -> list[float]:
    return [float(line.split()[1]) for line in stderr.splitlines() if line.startswith("progress")]


def kill_while_splitting(directory: Path, stderr_path: Path, at_progress: float = 0.25) -> None:
    """Start the engine, SIGKILL it once it has saved checkpoints and reported `at_progress`."""
    with stderr_path.open("wb") as stderr:
        engine = subprocess.Popen(
            engine_command(NUM, directory), stdout=subprocess.DEVNULL, stderr=stderr
        )
    run_dir = run_directory(directory, NUM + GUARD_DIGITS)
    try:

        def saved_some() -> bool:
            reported = progress_of(stderr_path.read_text())
            saved = any(run_dir.glob("*.node")) or any(directory.glob("series-*"))
            return bool(reported) and reported[-1] >= at_progress and saved

        wait_until(saved_some, 120, "the engine to save checkpoints")
    finally:
        engine.send_signal(signal.SIGKILL)  # the worker dies with it (PR_SET_PDEATHSIG)
        engine.wait()
    assert engine.returncode == -signal.SIGKILL


def split_notes(stderr: str) -> dict[str, dict[str, int]]:
    notes = {}
    for match in SPLIT_NOTE.finditer(stderr):
        role, a, b, computed, loaded, from_series = match.groups()
        notes[role] = {
            "terms": int(b) - int(a),
            "computed": int(computed),
            "loaded": int(loaded),
            "from_series": int(from_series),
        }
    return notes


def test_resume_after_kill_9_gives_the_digits_and_skips_checkpointed_work(
    tmp_path: Path, from_scratch: str
) -> None:
    kill_while_splitting(tmp_path, tmp_path.parent / f"{tmp_path.name}.err")
    run_dir = run_directory(tmp_path, NUM + GUARD_DIGITS)
    assert any(run_dir.glob("*.node"))

    digits, stderr = run_engine(NUM, tmp_path)

    assert digits == from_scratch
    notes = split_notes(stderr)
    assert set(notes) == {"parent", "worker"}
    for role, note in notes.items():
        # Every term of its range was either computed in a leaf now or loaded: none twice.
        assert note["computed"] + note["loaded"] == note["terms"], role
    loaded = sum(note["loaded"] for note in notes.values())
    assert loaded > 0
    assert (
        sum(note["computed"] for note in notes.values())
        == terms_for_digits(NUM + GUARD_DIGITS) - loaded
    )
    # Progress goes on from the work found, not from 0.
    assert progress_of(stderr)[0] > 0.05
    # The computation is over: its checkpoints are gone, the series state is kept.
    assert not run_dir.exists()
    assert [p.name for p in tmp_path.iterdir()] == [f"series-{terms_for_digits(NUM + 16)}"]


def test_a_kill_after_the_splitting_resumes_without_splitting_again(
    tmp_path: Path, from_scratch: str
) -> None:
    kill_while_splitting(tmp_path, tmp_path.parent / f"{tmp_path.name}.err", at_progress=0.65)

    digits, stderr = run_engine(NUM, tmp_path)

    assert digits == from_scratch
    # From the join's or the division's result, or from the series state the splitting ended
    # with.
    resumed_after = "note resumed after the join" in stderr or "after the division" in stderr
    assert resumed_after or all(note["computed"] == 0 for note in split_notes(stderr).values())
    assert progress_of(stderr)[0] >= 0.6


def kill_after(name: str, directory: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the engine in a forked child and kill it with -9 the moment it has saved the result
    `name`: "sqrt" (the worker's square root), "join" (what the division needs) or "divide"."""
    save_sqrt, save_final_stage = resume.save_sqrt, resume.save_final_stage

    def sqrt_then_die(
        checkpoints: CheckpointConfig | None, decimals: int, root: object, s: float
    ) -> None:
        save_sqrt(checkpoints, decimals, root, s)
        os.kill(os.getppid(), signal.SIGKILL)  # the worker saves it: the engine is its parent

    def final_stage_then_die(
        checkpoints: CheckpointConfig | None, decimals: int, stage: resume.FinalStage, s: float
    ) -> None:
        save_final_stage(checkpoints, decimals, stage, s)
        if stage.phase == name:
            os.kill(os.getpid(), signal.SIGKILL)

    if name == "sqrt":
        monkeypatch.setattr(parallel, "save_sqrt", sqrt_then_die)
    else:
        monkeypatch.setattr(parallel, "save_final_stage", final_stage_then_die)
    config = CheckpointConfig(directory, interval_seconds=0, max_bytes=2**30)
    child = mp.get_context("fork").Process(
        target=pi_decimals, args=(NUM,), kwargs={"checkpoints": config}
    )
    child.start()
    child.join(timeout=120)
    assert child.exitcode == -signal.SIGKILL


def test_a_kill_after_the_square_root_resumes_without_taking_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_scratch: str
) -> None:
    kill_after("sqrt", tmp_path, monkeypatch)
    assert (run_directory(tmp_path, NUM + GUARD_DIGITS) / "sqrt.node").exists()

    digits, stderr = run_engine(NUM, tmp_path)

    assert digits == from_scratch
    assert "note square root loaded" in stderr


@pytest.mark.parametrize(("phase", "done"), [("join", "the join"), ("divide", "the division")])
def test_a_kill_after_the_join_or_the_division_resumes_from_its_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_scratch: str, phase: str, done: str
) -> None:
    kill_after(phase, tmp_path, monkeypatch)
    run_dir = run_directory(tmp_path, NUM + GUARD_DIGITS)
    # The latest result made every earlier checkpoint of the run redundant.
    assert [path.name for path in run_dir.iterdir()] == [f"{phase}.node"]

    digits, stderr = run_engine(NUM, tmp_path)

    assert digits == from_scratch
    assert f"note resumed after {done}" in stderr
    assert split_notes(stderr) == {}  # neither process split a term
    resumed_from = progress_of(stderr)[0]
    assert 0.5 < resumed_from < 1.0
    assert progress_of(stderr)[-1] == 1.0
    assert not run_dir.exists()


def test_a_corrupt_join_result_is_ignored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, from_scratch: str
) -> None:
    kill_after("join", tmp_path, monkeypatch)
    saved = run_directory(tmp_path, NUM + GUARD_DIGITS) / "join.node"
    data = bytearray(saved.read_bytes())
    data[len(data) // 2] ^= 0x10
    saved.write_bytes(bytes(data))

    digits, stderr = run_engine(NUM, tmp_path)

    assert digits == from_scratch
    assert "checkpoint ignored: join.node: checksum mismatch" in stderr
    assert "resumed after" not in stderr
    # The join was done again from the series state the splitting left.
    assert all(note["computed"] == 0 for note in split_notes(stderr).values())


def test_a_corrupt_or_truncated_checkpoint_is_ignored(tmp_path: Path, from_scratch: str) -> None:
    kill_while_splitting(tmp_path, tmp_path.parent / f"{tmp_path.name}.err")
    run_dir = run_directory(tmp_path, NUM + GUARD_DIGITS)
    nodes = sorted(run_dir.glob("*.node"), key=lambda p: p.stat().st_size, reverse=True)
    corrupt = nodes[0]
    data = bytearray(corrupt.read_bytes())
    data[len(data) // 2] ^= 0x40
    corrupt.write_bytes(bytes(data))
    torn = [corrupt]
    if len(nodes) > 1:
        nodes[1].write_bytes(nodes[1].read_bytes()[: nodes[1].stat().st_size // 3])
        torn.append(nodes[1])

    digits, stderr = run_engine(NUM, tmp_path)

    assert digits == from_scratch
    for bad in torn:
        assert f"checkpoint ignored: {bad.name}" in stderr
    for role, note in split_notes(stderr).items():
        assert note["computed"] + note["loaded"] == note["terms"], role


def test_extending_the_stored_series_state_gives_the_digits_from_scratch(
    tmp_path: Path, from_scratch: str
) -> None:
    half, _ = run_engine(NUM // 2, tmp_path)
    assert half == from_scratch[: NUM // 2]
    stored_terms = terms_for_digits(NUM // 2 + GUARD_DIGITS)
    assert (tmp_path / f"series-{stored_terms}").is_dir()

    digits, stderr = run_engine(NUM, tmp_path)

    assert digits == from_scratch
    notes = split_notes(stderr)
    assert notes["parent"]["from_series"] == stored_terms
    # Only the new terms were computed.
    computed = sum(note["computed"] for note in notes.values())
    assert computed == terms_for_digits(NUM + GUARD_DIGITS) - stored_terms
    # The larger state replaced the smaller one.
    assert [p.name for p in tmp_path.iterdir()] == [f"series-{terms_for_digits(NUM + 16)}"]


@pytest.mark.parametrize(("first", "then"), [(120_000, 250_000), (250_000, 150_000)])
def test_series_state_at_small_sizes_against_mpmath(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, first: int, then: int
) -> None:
    """More decimals than stored extend the state; fewer use the larger state as it is."""
    monkeypatch.setattr(resume, "SERIES_FROM_DECIMALS", 1)
    config = CheckpointConfig(tmp_path, interval_seconds=3600, max_bytes=2**30)
    assert pi_decimals(first, checkpoints=config) == mpmath_decimals(first)
    assert list(tmp_path.glob("series-*"))
    assert pi_decimals(then, checkpoints=config) == mpmath_decimals(then)


def test_a_corrupt_series_state_is_ignored(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(resume, "SERIES_FROM_DECIMALS", 1)
    config = CheckpointConfig(tmp_path, interval_seconds=3600, max_bytes=2**30)
    pi_decimals(120_000, checkpoints=config)
    (state,) = tmp_path.glob("series-*")
    segment = sorted(state.glob("*.node"))[0]
    data = bytearray(segment.read_bytes())
    data[-100] ^= 1
    segment.write_bytes(bytes(data))
    assert pi_decimals(200_000, checkpoints=config) == mpmath_decimals(200_000)


def test_checkpoint_files_are_checked_when_read(tmp_path: Path) -> None:
    path = tmp_path / "n.node"
    numbers = [None, mpz(3) ** 5000, -(mpz(7) ** 300)]
    size = write_numbers(path, "node 1 2", numbers)
    assert size == path.stat().st_size
    assert read_numbers(path, "node 1 2") == numbers
    with pytest.raises(UnreadableCheckpoint, match="not a checkpoint of this computation"):
        read_numbers(path, "node 1 3")
    whole = path.read_bytes()
    for damaged in (whole[:-1], whole[: len(whole) // 2], whole + b"x", b""):
        path.write_bytes(damaged)
        with pytest.raises(UnreadableCheckpoint):
            read_numbers(path, "node 1 2")
    flipped = bytearray(whole)
    flipped[len(whole) // 2] ^= 1
    path.write_bytes(bytes(flipped))
    with pytest.raises(UnreadableCheckpoint, match="checksum"):
        read_numbers(path, "node 1 2")
    with pytest.raises(UnreadableCheckpoint):
        read_numbers(tmp_path / "missing.node", "node 1 2")


def test_a_file_the_other_process_replaced_meanwhile_counts_as_no_bytes(tmp_path: Path) -> None:
    # The worker counts the run's files for the bound while the parent replaces nodes by
    # their parent node: a listed file may be gone when its size is asked.
    kept = tmp_path / "0-10.node"
    kept.write_bytes(b"x" * 100)
    assert bytes_on_disk([kept, tmp_path / "10-20.node"]) == 100


class MeasuredCheckpoints(SubtreeCheckpoints):
    """Measures the files on disk after every node that may have saved."""

    on_disk: list[int]

    def joined(self, a: int, mid: int, b: int, node: Split) -> None:
        super().joined(a, mid, b, node)
        sizes = (path.stat().st_size for path in self._dir.glob("*.node"))
        self.on_disk = [*getattr(self, "on_disk", []), sum(sizes)]


def test_checkpoints_stay_within_their_bound(tmp_path: Path) -> None:
    max_bytes = 60_000
    notes: list[str] = []
    config = CheckpointConfig(tmp_path, interval_seconds=0.0, max_bytes=max_bytes)
    store = MeasuredCheckpoints(tmp_path, (0, 40_000), 500, config, max_bytes, notes.append)
    expected = split(0, 40_000)

    assert split(0, 40_000, store=store) == expected
    assert max(store.on_disk) <= max_bytes
    assert max(store.on_disk) > max_bytes // 4  # it did save, up to near the bound
    assert store.saved_nodes > 0
    assert any("checkpoint skipped" in note for note in notes)


def test_a_resumed_split_loads_instead_of_computing(tmp_path: Path) -> None:
    config = CheckpointConfig(tmp_path, interval_seconds=0.0, max_bytes=2**30)
    first = SubtreeCheckpoints(tmp_path, (0, 30_000), 400, config, 2**30, print)
    expected = split(0, 30_000, store=first)
    # The last save covers the root: a new run of the same range computes nothing.
    second = SubtreeCheckpoints(tmp_path, (0, 30_000), 400, config, 2**30, print)
    before = LeafCount.terms
    assert split(0, 30_000, store=second) == expected
    assert LeafCount.terms == before and second.loaded_terms == 30_000


def test_what_was_too_soon_to_save_is_saved_with_the_first_nodes(tmp_path: Path) -> None:
    config = CheckpointConfig(tmp_path, interval_seconds=0.0, max_bytes=2**30)
    store = SubtreeCheckpoints(tmp_path, (0, 30_000), 400, config, 2**30, print)
    nodes_on_disk_when_called: list[int] = []
    store.save_first = lambda: nodes_on_disk_when_called.append(len(list(tmp_path.iterdir())))
    split(0, 30_000, store=store)
    assert store.saved_nodes > 1
    assert nodes_on_disk_when_called == [0]  # once, with the first save


def test_discarding_a_computation_leaves_others_and_the_series_state(tmp_path: Path) -> None:
    for name in ("pi-1000016", "pi-1000032", "pi-2000016", "series-70000"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "0-10.node").write_bytes(b"x")
    discard_computation(tmp_path, 1_000_000)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pi-2000016", "series-70000"]


def test_checkpoints_that_cannot_be_written_cost_nothing_but_themselves(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(resume, "SERIES_FROM_DECIMALS", 1)
    not_a_directory = tmp_path / "file"
    not_a_directory.write_bytes(b"")
    config = CheckpointConfig(not_a_directory, interval_seconds=0.0, max_bytes=2**30)
    assert pi_decimals(150_000, checkpoints=config) == mpmath_decimals(150_000)
