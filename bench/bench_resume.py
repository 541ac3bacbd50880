"""Resuming after a crash, and extending the stored series state, beside runs from scratch.

    .venv/bin/python -m bench.bench_resume [--digits 200000000] [--kill-at 0.8,0.7]
        [--interval 20] [--no-extend]

Every run is `pi-digits N --checkpoint-dir DIR` in a fresh process, as the calculator runs it
(with checkpoints every --interval seconds, the service's default), its digits hashed:
0. without checkpoints (plain `pi-digits N`): what saving checkpoints and the series state costs;
1. uninterrupted, in an empty directory: the time every other figure is a ratio of;
2. in another empty directory, killed with SIGKILL (the engine's worker dies with it, as both
   die with a calculator killed with -9) at --kill-at of its estimated time, then run
   again in that directory: the resumed run's time beside the uninterrupted one's (issue 12's
   goal: at most 35% at 80% of a 200,000,000-digit job); for each --kill-at given;
3. in a third, N/2 decimals, then N: the larger run, starting from the smaller one's series
   state, beside the uninterrupted run from scratch and a second one from scratch run after it
   (the host's speed drifts: the two bracket it).
The machine is shared: ratios within one run are what to compare.
"""

import argparse
import hashlib
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

PI_DIGITS = Path(sys.executable).parent / "pi-digits"


@dataclass
class Run:
    seconds: float
    cpu_seconds: float  # the engine's and its worker's: steadier than wall time on a busy host
    sha256: str
    notes: list[str]
    first_progress: float

    def __str__(self) -> str:
        return f"{self.seconds:7.1f} s ({self.cpu_seconds:.1f} s of CPU)"


def command(num: int, directory: Path | None, interval: float) -> list[str]:
    """The engine as the calculator runs it; without checkpoints for directory None."""
    checkpoints = [f"--checkpoint-dir={directory}", f"--checkpoint-interval={interval}"]
    return [str(PI_DIGITS), str(num), "--progress", *(checkpoints if directory else [])]


def children_cpu_seconds() -> float:
    """User and system time of the finished children (the engine waits for its worker)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run(num: int, directory: Path | None, interval: float, scratch: Path) -> Run:
    output, errors = scratch / "digits.txt", scratch / "stderr.txt"
    start, cpu_start = time.perf_counter(), children_cpu_seconds()
    with output.open("wb") as out, errors.open("wb") as err:
        subprocess.run(command(num, directory, interval), stdout=out, stderr=err, check=True)
    seconds, cpu_seconds = time.perf_counter() - start, children_cpu_seconds() - cpu_start
    digest = hashlib.sha256()
    with output.open("rb") as digits:
        while block := digits.read(1 << 24):
            digest.update(block)
    output.unlink()
    lines = errors.read_text().splitlines()
    progress = [float(line.split()[1]) for line in lines if line.startswith("progress ")]
    notes = [line for line in lines if line.startswith("note ")]
    return Run(seconds, cpu_seconds, digest.hexdigest(), notes, progress[0] if progress else 0.0)


def kill_at(
    num: int, directory: Path, interval: float, fraction: float, scratch: Path
) -> tuple[float, str]:
    """Start a run and SIGKILL it at `fraction` of its own estimated duration; returns its
    seconds and last progress line.

    The engine's progress is modelled in proportion to time, so elapsed / progress at each
    report estimates the run's total (as the service's ETA does). Not at the first report past
    the fraction: reports come as phases end, so that would always land just after a phase's
    checkpoint; nor at a fraction of another run's time: on this shared host runs of the same
    job differ by a third, which moves such a kill by a whole phase."""
    errors = scratch / "killed.txt"
    start = time.perf_counter()
    with errors.open("wb") as err:
        engine = subprocess.Popen(
            command(num, directory, interval), stdout=subprocess.DEVNULL, stderr=err
        )
    reported: list[str] = []
    estimated_total = float("inf")
    try:
        while engine.poll() is None:
            lines = [line for line in errors.read_text().splitlines() if line[:8] == "progress"]
            if len(lines) > len(reported):
                reported = lines
                progress = float(lines[-1].split()[1])
                if progress >= 0.05:
                    estimated_total = (time.perf_counter() - start) / progress
            if time.perf_counter() - start >= fraction * estimated_total:
                break
            time.sleep(0.05)
    finally:
        engine.send_signal(signal.SIGKILL)
        engine.wait()
    if engine.returncode != -signal.SIGKILL:
        raise SystemExit(f"the run ended ({engine.returncode}) before {fraction:.0%} of its time")
    return time.perf_counter() - start, reported[-1] if reported else "no progress"


def ratios(run: Run, reference: Run) -> str:
    wall, cpu = run.seconds / reference.seconds, run.cpu_seconds / reference.cpu_seconds
    return f"{wall:.2f} of (CPU {cpu:.2f})"


def directory_bytes(directory: Path) -> int:
    return sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--digits", type=int, default=200_000_000)
    parser.add_argument(
        "--kill-at",
        type=lambda text: [float(f) for f in text.split(",")],
        default=[0.8],
        help="when to kill, as fractions of the run's estimated time, comma-separated",
    )
    parser.add_argument("--interval", type=float, default=20.0)
    parser.add_argument("--no-extend", action="store_true")
    args = parser.parse_args()
    num = args.digits
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as temporary:
        base = Path(temporary)
        scratch = base / "scratch"
        scratch.mkdir()
        print(f"{num:,} decimals, checkpoints every {args.interval:g} s")

        plain = run(num, None, args.interval, scratch)
        print(f"without checkpoints: {plain}")
        full = run(num, base / "uninterrupted", args.interval, scratch)
        stored = directory_bytes(base / "uninterrupted")
        same = "same digits" if full.sha256 == plain.sha256 else "DIGITS DIFFER"
        print(f"uninterrupted: {full}   {ratios(full, plain)} without, {same}")
        print(f"  sha256 {full.sha256}; series state kept: {stored / 2**20:,.0f} MiB")
        shutil.rmtree(base / "uninterrupted")

        for fraction in args.kill_at:
            crashed = base / "crashed"
            seconds, last = kill_at(num, crashed, args.interval, fraction, scratch)
            saved = directory_bytes(crashed) / 2**20
            print(f"killed -9 after {seconds:.1f} s ({last}), {saved:,.0f} MiB saved")
            resumed = run(num, crashed, args.interval, scratch)
            same = "same digits" if resumed.sha256 == full.sha256 else "DIGITS DIFFER"
            print(f"resumed: {resumed}   {ratios(resumed, full)} uninterrupted, {same}")
            print(f"  first progress {resumed.first_progress:.2f}; " + "; ".join(resumed.notes))
            shutil.rmtree(crashed)

        if not args.no_extend:
            extended = base / "extended"
            half = run(num // 2, extended, args.interval, scratch)
            print(f"{num // 2:,} decimals first: {half}")
            larger = run(num, extended, args.interval, scratch)
            same = "same digits" if larger.sha256 == full.sha256 else "DIGITS DIFFER"
            print(f"{num:,} after it: {larger}   {ratios(larger, full)} the first, {same}")
            print("  " + "; ".join(larger.notes))
            again = run(num, base / "scratch-again", args.interval, scratch)
            print(f"from scratch again: {again}   the extension {ratios(larger, again)} it")


if __name__ == "__main__":
    main()
