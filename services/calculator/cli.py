"""`pi-digits N [--radix 16]`: write "3." and N digits of pi after the point to stdout (no
trailing newline): decimals, or hexadecimal digits in lower case."""

import argparse
import os
import sys
from pathlib import Path
from typing import NoReturn

from services.calculator.checkpoints import CheckpointConfig
from services.calculator.engine import InsufficientMemoryError, write_pi_decimals
from services.calculator.hex_digits import write_pi_hex

EXIT_USAGE = 2
EXIT_NO_MEMORY = 3


class _OneLineParser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"N must be a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"N must be a positive integer, got {text!r}")
    return value


def _print_progress(fraction: float) -> None:
    sys.stderr.write(f"progress {fraction:.4f}\n")
    sys.stderr.flush()


def main() -> None:
    parser = _OneLineParser(prog="pi-digits", description="Print pi to N digits after the point.")
    parser.add_argument("n", metavar="N", type=_positive_int, help="number of digits")
    parser.add_argument("--radix", type=int, choices=(10, 16), default=10, help="10 or 16")
    parser.add_argument("--progress", action="store_true", help="report progress on stderr")
    parser.add_argument(
        "--checkpoint-dir", type=Path, help="save and resume the work here; keep the series state"
    )
    parser.add_argument("--checkpoint-interval", type=float, default=60.0, metavar="SECONDS")
    parser.add_argument("--checkpoint-max-bytes", type=int, default=8 * 2**30, metavar="BYTES")
    parser.add_argument("--no-series-state", action="store_true", help="keep no series state")
    args = parser.parse_args()
    checkpoints = None
    if args.checkpoint_dir is not None:
        checkpoints = CheckpointConfig(
            args.checkpoint_dir,
            args.checkpoint_interval,
            args.checkpoint_max_bytes,
            keep_series=not args.no_series_state,
        )
    out = sys.stdout.buffer
    write = write_pi_hex if args.radix == 16 else write_pi_decimals
    progress = _print_progress if args.progress else None
    try:
        out.write(b"3.")  # buffered: nothing reaches the reader before the digits are known
        write(args.n, out, on_progress=progress, checkpoints=checkpoints)
        out.flush()
    except InsufficientMemoryError as error:
        sys.stderr.write(f"pi-digits: {error}\n")
        sys.exit(EXIT_NO_MEMORY)
    except BrokenPipeError:
        # Reader went away (e.g. `| head`): silence the flush at interpreter exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        sys.exit(1)


if __name__ == "__main__":
    main()
