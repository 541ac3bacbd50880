"""Runs the digit engine in a child process, so the event loop never waits on the computation.

Cancelling the coroutine kills the child: its CPU is freed at once.
"""

import asyncio
import contextlib
import logging
import sys
from collections.abc import Callable

from services.calculator.checkpoints import CheckpointConfig
from services.calculator.handler import ComputeError
from services.shared.runtime import die_with_parent

log = logging.getLogger(__name__)

_RUN_ENGINE = "from services.calculator.cli import main; main()"


def checkpoint_arguments(checkpoints: CheckpointConfig | None) -> list[str]:
    if checkpoints is None:
        return []
    return [
        f"--checkpoint-dir={checkpoints.directory}",
        f"--checkpoint-interval={checkpoints.interval_seconds}",
        f"--checkpoint-max-bytes={checkpoints.max_bytes}",
        *([] if checkpoints.keep_series else ["--no-series-state"]),
    ]


async def compute_decimals(
    num: int, on_progress: Callable[[float], None], checkpoints: CheckpointConfig | None = None
) -> str:
    """With checkpoints, the engine resumes from what a run of the same computation saved."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUN_ENGINE,
        str(num),
        "--progress",
        *checkpoint_arguments(checkpoints),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,  # a calculator killed with -9 leaves no computation behind
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        output, last_error = await asyncio.gather(
            process.stdout.read(), _read_progress(process.stderr, on_progress, num)
        )
        await process.wait()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        raise ComputeError(f"digit engine exited with {process.returncode}: {last_error}")
    if not output.startswith(b"3.") or len(output) != num + 2:
        raise ComputeError(f"digit engine returned {len(output)} bytes, expected {num + 2}")
    return str(memoryview(output)[2:], "ascii")  # no intermediate copy of 100 MB of digits


async def _read_progress(
    stream: asyncio.StreamReader, on_progress: Callable[[float], None], num: int
) -> str:
    """Pass `progress <fraction>` lines on, log `note <text>` lines (checkpoints saved, found,
    ignored); return the last other line (the error, if any)."""
    last_other = "no message"
    async for raw in stream:
        line = raw.decode(errors="replace").strip()
        word, _, value = line.partition(" ")
        if word == "progress":
            with contextlib.suppress(ValueError):
                on_progress(float(value))
        elif word == "note":
            log.info("digit engine note", extra={"computing": num, "engine_note": value})
        elif line:
            last_other = line
    return last_other
