"""Hexadecimal digits of pi, from the decimal engine, against mpmath and the Pi API's digits."""

import io
import subprocess
import sys

import pytest

from services.calculator.hex_digits import pi_hex, write_pi_hex
from tests.support import PI_API_FIRST_100_HEX, reference_pi_hex


def test_the_first_hundred_are_the_pi_apis() -> None:
    assert "3" + pi_hex(99) == PI_API_FIRST_100_HEX


@pytest.mark.parametrize("num", [1, 2, 7, 16, 255, 1000, 4097, 30_000])
def test_any_count_is_mpmaths_truncated(num: int) -> None:
    assert "3" + pi_hex(num) == reference_pi_hex(num)


def test_a_million_in_two_processes_are_mpmaths() -> None:
    assert "3" + pi_hex(1_000_000, workers=2) == reference_pi_hex(1_000_000)


def test_written_in_pieces_they_are_the_same() -> None:
    out = io.BytesIO()
    write_pi_hex(5000, out)
    assert out.getvalue() == pi_hex(5000).encode()


@pytest.mark.parametrize("num", [0, -1, True])
def test_a_count_below_one_is_refused(num: int) -> None:
    with pytest.raises(ValueError):
        pi_hex(num)


def test_the_engine_command_writes_hexadecimal_digits() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from services.calculator.cli import main; main()",
            "12",
            "--radix",
            "16",
        ],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == b"3.243f6a8885a3"
