"""Runs the digit engine in a child process, so the event loop never waits on the computation.

The digits are read from the engine's stdout a chunk at a time and passed on as they come: the
calculator's memory does not grow with the number of digits. Cancelling the coroutine kills the
child: its CPU is freed at once.
"""

import asyncio
import contextlib
import logging
import re
import sys
from collections.abc import Callable

from services.calculator.checkpoints import CheckpointConfig
from services.calculator.handler import ComputeError, TakeChunk
from services.calculator.memory import InsufficientMemoryError, ensure_memory_for
from services.shared.events import DIGITS_PER_CHUNK, Radix
from services.shared.radix import decimals_needed
from services.shared.runtime import die_with_parent

log = logging.getLogger(__name__)

_RUN_ENGINE = "from services.calculator.cli import main; main()"
_DIGITS = {10: re.compile(rb"[0-9]*"), 16: re.compile(rb"[0-9a-f]*")}


def checkpoint_arguments(checkpoints: CheckpointConfig | None) -> list[str]:
    if checkpoints is None:
        return []
    return [
        f"--checkpoint-dir={checkpoints.directory}",
        f"--checkpoint-interval={checkpoints.interval_seconds}",
        f"--checkpoint-max-bytes={checkpoints.max_bytes}",
        *([] if checkpoints.keep_series else ["--no-series-state"]),
    ]


async def compute_digits(
    num: int,
    radix: Radix,
    on_progress: Callable[[float], None],
    take_chunk: TakeChunk,
    checkpoints: CheckpointConfig | None = None,
) -> None:
    """Computes `num` digits in `radix` (a whole number of chunks) and passes them on chunk by
    chunk. With checkpoints, the engine resumes from what a run of the same computation saved."""
    if num % DIGITS_PER_CHUNK:
        raise ValueError(f"num must be a whole number of {DIGITS_PER_CHUNK}-digit chunks")
    try:
        # Refused before any process starts (the engine checks again).
        ensure_memory_for(decimals_needed(num, radix))
    except InsufficientMemoryError as refused:
        raise ComputeError(f"refused: {refused}") from None
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _RUN_ENGINE,
        str(num),
        f"--radix={radix}",
        "--progress",
        *checkpoint_arguments(checkpoints),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=die_with_parent,  # a calculator killed with -9 leaves no computation behind
    )
    assert process.stdout is not None and process.stderr is not None
    try:
        error, last_error = await asyncio.gather(
            read_chunks(process.stdout, num, take_chunk, radix),
            _read_progress(process.stderr, on_progress, num),
        )
        await process.wait()
    finally:
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()
    if process.returncode != 0:
        raise ComputeError(f"digit engine exited with {process.returncode}: {last_error}")
    if error is not None:
        raise ComputeError(error)


async def read_chunks(
    stdout: asyncio.StreamReader, num: int, take_chunk: TakeChunk, radix: Radix = 10
) -> str | None:
    """Reads "3." and num digits, passing each whole chunk on as soon as it is read.

    Returns what was wrong with the output, or None. Reads to the end even after a fault, so
    the engine never blocks on a full pipe.
    """
    fault = await _pass_chunks_on(stdout, num, take_chunk, radix)
    while await stdout.read(1 << 16):
        pass
    return fault


async def _pass_chunks_on(
    stdout: asyncio.StreamReader, num: int, take_chunk: TakeChunk, radix: Radix
) -> str | None:
    if await _read_up_to(stdout, 2) != b"3.":
        return "digit engine output does not start with 3."
    for index in range(num // DIGITS_PER_CHUNK):
        chunk = await _read_up_to(stdout, DIGITS_PER_CHUNK)
        if len(chunk) < DIGITS_PER_CHUNK or not _DIGITS[radix].fullmatch(chunk):
            got = index * DIGITS_PER_CHUNK + len(chunk)
            return f"digit engine returned {got} digits or a non-digit, expected {num}"
        await take_chunk(index, chunk.decode("ascii"))
    if await _read_up_to(stdout, 1):
        return f"digit engine returned more than {num} digits"
    return None


async def _read_up_to(stream: asyncio.StreamReader, size: int) -> bytes:
    try:
        return await stream.readexactly(size)
    except asyncio.IncompleteReadError as short:
        return short.partial


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
