"""Runs the digit engine in a child process, so the event loop never waits on the computation."""

import asyncio
import sys

from services.calculator.handler import ComputeError

_RUN_ENGINE = "from services.calculator.cli import main; main()"


async def compute_decimals(num: int) -> str:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUN_ENGINE,
        str(num),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        output, errors = await process.communicate()
    except asyncio.CancelledError:
        if process.returncode is None:
            process.kill()
            await process.wait()
        raise
    if process.returncode != 0:
        reason = errors.decode(errors="replace").strip().splitlines()[-1:] or ["no message"]
        raise ComputeError(f"digit engine exited with {process.returncode}: {reason[0]}")
    text = output.decode("ascii")
    if not text.startswith("3.") or len(text) != num + 2:
        raise ComputeError(f"digit engine returned {len(text)} characters, expected {num + 2}")
    return text[2:]
