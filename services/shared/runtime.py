"""Running a service's main coroutine until SIGINT or SIGTERM, then shutting down cleanly."""

import asyncio
import contextlib
import ctypes
import logging
import signal
from collections.abc import Coroutine
from typing import Any

import uvloop

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: signal.Signals = signal.SIGTERM) -> None:
    """Ask Linux to signal this process when its parent dies: a killed parent leaves no orphans.

    For `preexec_fn`, or the first thing a child process does.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, sig)


def run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    """Run `main` on uvloop (a faster event loop than asyncio's own) until a signal stops it."""
    uvloop.run(_run(main))


async def _run(main: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("stopped")
