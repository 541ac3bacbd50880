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
    try:
        await task
    except asyncio.CancelledError:
        log.info("stopped")
    except Exception as error:  # one of its tasks failed: started afresh beats half-broken
        log.critical("stopped by an unexpected error", exc_info=error)
        raise SystemExit(1) from None


def stop_if_it_fails(task: asyncio.Task[Any]) -> None:
    """For a long-running task beside a server (the API's): if it fails, the process logs it and
    stops gracefully (SIGTERM to itself), and its supervisor starts a new one, rather than
    serving on half-broken."""

    def check(done: asyncio.Task[Any]) -> None:
        if not done.cancelled() and (error := done.exception()) is not None:
            log.critical("a background task failed: stopping", exc_info=error)
            signal.raise_signal(signal.SIGTERM)

    task.add_done_callback(check)
