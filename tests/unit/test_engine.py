"""Digit engine against an independent computation (mpmath's own Chudnovsky)."""

import hashlib
import itertools
import os
import signal
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

import mpmath
import pytest

from services.calculator import engine, memory
from services.calculator.engine import InsufficientMemoryError, estimate_peak_bytes, pi_decimals
from services.calculator.phases import REPORT_STEP
from tests.reference_digits import SHA256_10M
from tests.support import wait_until

PI_DIGITS_BIN = Path(sys.executable).parent / "pi-digits"
REFERENCE_SIZE = 1_000_000


# 1-based decimal positions where runs of 9s or 0s start, so truncating just
# before or inside them is where rounding and missing guard digits would show.
FEYNMAN_POINT = 762  # decimals 762..767 are 999999
RUN_STARTS = [FEYNMAN_POINT, 17_534, 19_446, 56_988, 193_034, 211_058]


def mpmath_decimals(num: int) -> str:
    # 30 extra digits: the rounding of str() only touches the last of them.
    with mpmath.workdps(num + 30):
        text = str(mpmath.pi)
    return text[2 : 2 + num]


@pytest.fixture(scope="module")
def reference() -> str:
    return mpmath_decimals(REFERENCE_SIZE)


@pytest.mark.parametrize(
    ("num", "expected"),
    [
        (1, "1"),
        (2, "14"),
        (12, "141592653589"),
        (50, "14159265358979323846264338327950288419716939937510"),
    ],
)
def test_tiny(num: int, expected: str) -> None:
    assert pi_decimals(num) == expected


@pytest.mark.parametrize("num", [1, 3, 50, 1000, 5000])
def test_small_sizes_match_mpmath(num: int, reference: str) -> None:
    assert pi_decimals(num) == reference[:num]


def test_feynman_point_is_truncated_not_rounded(reference: str) -> None:
    assert reference[FEYNMAN_POINT - 1 : FEYNMAN_POINT + 5] == "999999"
    for num in range(FEYNMAN_POINT - 2, FEYNMAN_POINT + 8):
        assert pi_decimals(num) == reference[:num], num
    assert pi_decimals(FEYNMAN_POINT - 1).endswith("134")
    assert pi_decimals(FEYNMAN_POINT + 5).endswith("999999")


@pytest.mark.parametrize("run_start", RUN_STARTS)
@pytest.mark.parametrize("offset", [-1, 0, 2])
def test_cut_next_to_runs_of_nines_and_zeros(run_start: int, offset: int, reference: str) -> None:
    num = run_start + offset
    assert pi_decimals(num) == reference[:num]


def test_ambiguous_guard_digits_are_widened(
    monkeypatch: pytest.MonkeyPatch, reference: str
) -> None:
    # With 2 guard digits the cut before the Feynman point sees "99": must look further.
    monkeypatch.setattr(engine, "GUARD_DIGITS", 2)
    assert pi_decimals(FEYNMAN_POINT - 1) == reference[: FEYNMAN_POINT - 1]


@pytest.mark.parametrize("num", [99_999, 100_000, 123_457])
def test_around_parallel_threshold(num: int, reference: str) -> None:
    assert pi_decimals(num) == reference[:num]


def test_serial_and_parallel_agree(reference: str) -> None:
    num = 200_001
    assert pi_decimals(num, workers=1) == pi_decimals(num, workers=2) == reference[:num]


@pytest.mark.slow
def test_one_million(reference: str) -> None:
    assert pi_decimals(REFERENCE_SIZE) == reference


@pytest.mark.slow
def test_ten_million_hash() -> None:
    digits = pi_decimals(10_000_000)
    assert len(digits) == 10_000_000
    assert hashlib.sha256(digits.encode("ascii")).hexdigest() == SHA256_10M


@pytest.mark.parametrize("num", [1000, 50_000, 300_000])  # serial and parallel
def test_progress_rises_from_0_to_1_in_small_steps(num: int) -> None:
    seen: list[float] = []
    assert pi_decimals(num, on_progress=seen.append) == mpmath_decimals(num)
    assert seen[0] == 0.0 and seen[-1] == 1.0
    steps = [later - earlier for earlier, later in itertools.pairwise(seen)]
    assert all(step > 0 for step in steps)
    assert max(steps) < 0.2  # one GMP call: a division, a conversion, the last join
    assert len(seen) <= 1 / REPORT_STEP + 2  # a line per percent at most
    if num >= 300_000:
        assert len(seen) > 30


@pytest.mark.parametrize("bad", [0, -5, True, 1.5, "12"])
def test_rejects_bad_num(bad: object) -> None:
    with pytest.raises(ValueError, match="positive integer"):
        pi_decimals(bad)  # type: ignore[arg-type]


def test_refuses_when_memory_is_short(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(memory, "available_bytes", lambda: 50 * 2**20)
    with pytest.raises(InsufficientMemoryError, match=r"need about \d+ MiB.*only 50 MiB"):
        pi_decimals(10_000_000)


def test_peak_estimate_grows_with_digits() -> None:
    assert estimate_peak_bytes(10_000_000) < 400 * 10**6
    assert estimate_peak_bytes(100_000_000) < 2_500 * 10**6
    assert estimate_peak_bytes(1) < estimate_peak_bytes(10**6) < estimate_peak_bytes(10**8)


def _in_child(num: int) -> str:
    return pi_decimals(num)


@pytest.mark.parametrize("start_method", ["fork", "spawn"])
def test_works_inside_a_worker_process(start_method: str, reference: str) -> None:
    with ProcessPoolExecutor(1, mp_context=get_context(start_method)) as pool:
        assert pool.submit(_in_child, 150_000).result() == reference[:150_000]


def run_cli(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([str(PI_DIGITS_BIN), *args], capture_output=True, timeout=60)


def test_cli_prints_digits_without_newline() -> None:
    result = run_cli("12")
    assert result.returncode == 0
    assert result.stdout == b"3.141592653589"


def test_cli_large_output_matches(reference: str) -> None:
    result = run_cli("300000")
    assert result.stdout == b"3." + reference[:300_000].encode()


@pytest.mark.parametrize("bad", ["0", "-3", "abc", "1.5", ""])
def test_cli_bad_n_exits_2_with_one_line(bad: str) -> None:
    result = run_cli(bad)
    assert result.returncode == 2
    assert result.stdout == b""
    assert len(result.stderr.decode().strip().splitlines()) == 1


def test_cli_progress_goes_to_stderr() -> None:
    result = run_cli("200000", "--progress")
    assert result.returncode == 0
    lines = result.stderr.decode().splitlines()
    assert 2 <= len(lines) <= 1 / REPORT_STEP + 2
    assert all(line.startswith("progress ") for line in lines)
    assert lines[0] == "progress 0.0000" and lines[-1] == "progress 1.0000"


def _children(pid: int) -> list[int]:
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(child) for child in (task / "children").read_text().split()]
    return found


@pytest.mark.parametrize("parent_signal", [signal.SIGTERM, signal.SIGKILL])
def test_worker_dies_with_killed_parent(parent_signal: signal.Signals) -> None:
    parent = subprocess.Popen([str(PI_DIGITS_BIN), "20000000"], stdout=subprocess.DEVNULL)
    try:
        wait_until(lambda: bool(_children(parent.pid)), 10, "the worker to start")
        (worker_pid,) = _children(parent.pid)
        parent.send_signal(parent_signal)
        parent.wait(timeout=10)
        wait_until(lambda: not Path(f"/proc/{worker_pid}").exists(), 5, "the worker to die")
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_no_worker_left_after_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(scaled_pi: object) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(engine, "_truncator", lambda guard: boom)
    before = set(_children(os.getpid()))  # e.g. multiprocessing's resource tracker
    with pytest.raises(RuntimeError, match="boom"):
        pi_decimals(300_000)
    assert set(_children(os.getpid())) == before
