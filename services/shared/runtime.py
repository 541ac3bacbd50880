"""Running a service's main coroutine until SIGINT or SIGTERM, then shutting down cleanly."""

import asyncio
import contextlib
import logging
import signal
from collections.abc import Coroutine
from typing import Any

log = logging.getLogger(__name__)


def run_until_stopped(main: Coroutine[Any, Any, None]) -> None:
    asyncio.run(_run(main))


async def _run(main: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(main)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, task.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await task
    log.info("stopped")
