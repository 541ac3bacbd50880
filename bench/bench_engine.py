"""Benchmark the pi digit engine against mpmath (gmpy2 backend).

    .venv/bin/python bench/bench_engine.py [--sizes 1000000,10000000] [--repeat 1] [--huge]

Every measurement runs in a fresh interpreter (this script re-invoked with
--measure) that times the computation itself and reports peak RSS as its own
ru_maxrss plus RUSAGE_CHILDREN (the engine's forked worker), i.e. the sum of the
per-process peaks. "cli s" is the wall time of `pi-digits N > /dev/null`,
interpreter start-up and output included. With --repeat the best run counts.
"""

import argparse
import io
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO, cast

VENV_BIN = Path(sys.executable).parent
HUGE_SIZE = 100_000_000


def measure(kind: str, num: int) -> None:
    """Child side: compute once, print {"seconds", "peak_mib"} as JSON."""
    if kind == "engine":
        from services.calculator.engine import write_pi_decimals

        # Written out as the CLI writes them (counted, not kept): the engine's own memory.
        counter = _CountingSink()
        start = time.perf_counter()
        write_pi_decimals(num, cast(BinaryIO, counter))
        seconds = time.perf_counter() - start
        assert counter.written == num, counter.written
    else:
        import mpmath

        start = time.perf_counter()
        mpmath.mp.dps = num + 10
        digits = str(mpmath.pi)[2 : num + 2]
        seconds = time.perf_counter() - start
        assert len(digits) == num
    _print_measure(seconds)


class _CountingSink(io.RawIOBase):
    def __init__(self) -> None:
        self.written = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:  # a bytes-like object, as BinaryIO.write takes
        self.written += len(data)
        return len(data)


def _print_measure(seconds: float) -> None:
    peak_kib = (
        resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        + resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    )
    print(json.dumps({"seconds": seconds, "peak_mib": peak_kib / 1024}))


def run_measure(kind: str, num: int) -> dict[str, float]:
    completed = subprocess.run(
        [sys.executable, __file__, "--measure", kind, str(num)],
        check=True,
        capture_output=True,
        text=True,
    )
    result: dict[str, float] = json.loads(completed.stdout)
    return result


def run_cli(num: int) -> float:
    start = time.perf_counter()
    subprocess.run([str(VENV_BIN / "pi-digits"), str(num)], check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def best(runs: list[dict[str, float]]) -> dict[str, float]:
    return min(runs, key=lambda run: run["seconds"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000000,10000000")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--huge", action="store_true", help="add 100,000,000 (engine only)")
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(args.measure[0], int(args.measure[1]))
        return

    sizes = [int(size) for size in args.sizes.split(",") if size]
    header = (
        f"{'decimals':>12} {'engine s':>9} {'engine MiB':>10} {'mpmath s':>9} "
        f"{'mpmath MiB':>10} {'ratio':>6} {'cli s':>7}"
    )
    print(header)
    print("-" * len(header))
    for num in [*sizes, *([HUGE_SIZE] if args.huge else [])]:
        with_mpmath = num != HUGE_SIZE
        engine_runs, mpmath_runs = [], []
        for _ in range(args.repeat):  # interleaved, so load changes hit both
            engine_runs.append(run_measure("engine", num))
            if with_mpmath:
                mpmath_runs.append(run_measure("mpmath", num))
        engine = best(engine_runs)
        cli_seconds = min(run_cli(num) for _ in range(args.repeat))
        if with_mpmath:
            reference = best(mpmath_runs)
            tail = (
                f"{reference['seconds']:9.3f} {reference['peak_mib']:10.0f} "
                f"{engine['seconds'] / reference['seconds']:6.2f}"
            )
        else:
            tail = f"{'-':>9} {'-':>10} {'-':>6}"
        print(
            f"{num:>12,} {engine['seconds']:9.3f} {engine['peak_mib']:10.0f} {tail} "
            f"{cli_seconds:7.2f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
