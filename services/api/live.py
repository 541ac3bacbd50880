"""A job's status changes as server-sent events, until the job ends.

Streams do not read the view themselves: the process's watcher re-reads the jobs they follow
when the view moves, and wakes them.
"""

import asyncio
from collections.abc import AsyncIterator

from services.api.callers import Caller
from services.api.jobs import Jobs
from services.api.statuses import status_body, status_json
from services.api.watcher import ViewWatcher
from services.shared.view import TERMINAL_STATUSES, JobView, read_view

_KEEPALIVE_SECONDS = 15.0


async def status_events(job_id: str, caller: Caller, jobs: Jobs) -> AsyncIterator[bytes]:
    job = await jobs.find(job_id, caller)  # 404 before the stream starts
    stored = await read_view(jobs.view, jobs.view.stored_digits, job.radix)
    return _stream(job_id, job, stored, jobs.watcher)


def _event(job: JobView, stored_digits: int) -> tuple[bytes, bool]:
    body = status_body(job, stored_digits)
    return b"event: status\ndata: " + status_json(body) + b"\n\n", body.status in TERMINAL_STATUSES


async def _stream(
    job_id: str, job: JobView, stored_digits: int, watcher: ViewWatcher
) -> AsyncIterator[bytes]:
    with watcher.follow(job_id) as followed:
        last_sent, finished = _event(job, stored_digits)
        yield last_sent
        seen = followed.version
        while not finished:
            if followed.version == seen:
                try:
                    await asyncio.wait_for(followed.changed.wait(), _KEEPALIVE_SECONDS)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
            seen = followed.version
            if followed.job is None:
                continue  # accepted, not in the view yet
            event, finished = _event(followed.job, followed.stored_digits)
            if event != last_sent:
                yield event
                last_sent = event
