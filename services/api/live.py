"""A job's status changes as server-sent events, until the job ends."""

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from services.api.jobs import status_body
from services.shared.view import TERMINAL_STATUSES, ViewReader
from services.shared.web import find_job

_POLL_SECONDS = 0.2
_KEEPALIVE_SECONDS = 15.0


async def status_events(job_id: str, view: ViewReader) -> AsyncIterator[str]:
    await asyncio.to_thread(find_job, job_id, view)  # 404 before the stream starts
    return _stream(job_id, view)


def _current(job_id: str, view: ViewReader) -> dict[str, Any]:
    return status_body(find_job(job_id, view), view.stored_digits())


async def _stream(job_id: str, view: ViewReader) -> AsyncIterator[str]:
    last_sent = None
    quiet_for = 0.0
    while True:
        body = await asyncio.to_thread(_current, job_id, view)
        text = json.dumps(body, default=str)
        if text != last_sent:
            yield f"event: status\ndata: {text}\n\n"
            last_sent, quiet_for = text, 0.0
            if body["status"] in TERMINAL_STATUSES:
                return
        elif quiet_for >= _KEEPALIVE_SECONDS:
            yield ": keep-alive\n\n"
            quiet_for = 0.0
        await asyncio.sleep(_POLL_SECONDS)
        quiet_for += _POLL_SECONDS
