"""One watcher per API process: it follows how far the view has read the log and wakes the
requests waiting on it, instead of each request polling the view on its own.

- A submission waits until the view has applied its event (read-your-writes).
- An event stream waits until the job it follows changes.

It polls the view's read positions, which move with every change: every millisecond while a
submission waits, every 100 ms while only streams are open, not at all otherwise.
"""

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from services.shared.view import JobView, ViewReader, read_view

log = logging.getLogger(__name__)


@dataclass
class _Waiter:
    offset: int
    deadline: float
    done: asyncio.Future[bool]


@dataclass
class FollowedJob:
    """A job that event streams follow; at each change, `version` grows and `changed` is set
    (then replaced by a new event for the next change)."""

    job: JobView | None = None
    stored_digits: int = 0
    version: int = 0
    followers: int = 0
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class ViewWatcher:
    def __init__(
        self, view: ViewReader, busy_poll_seconds: float = 0.001, idle_poll_seconds: float = 0.1
    ) -> None:
        self._view = view
        self._busy_poll = busy_poll_seconds
        self._idle_poll = idle_poll_seconds
        self._positions: dict[tuple[str, int], int] = {}
        self._waiters: defaultdict[tuple[str, int], list[_Waiter]] = defaultdict(list)
        self._followed: dict[str, FollowedJob] = {}
        self._wake = asyncio.Event()

    async def wait_past(self, topic: str, partition: int, offset: int, timeout: float) -> bool:
        """True once the view has applied the record at `offset`; False after `timeout`."""
        if self._positions.get((topic, partition), 0) > offset:
            return True
        loop = asyncio.get_running_loop()
        waiter = _Waiter(offset, loop.time() + timeout, loop.create_future())
        if not self._waiters:
            self._wake.set()  # from a slower cadence (or none) to the busy one
        self._waiters[(topic, partition)].append(waiter)
        return await waiter.done

    async def wait_until(self, ends: Mapping[tuple[str, int], int], timeout: float) -> bool:
        """True once the view has read each partition up to its offset in `ends`."""
        waits = [
            self.wait_past(topic, partition, end - 1, timeout)
            for (topic, partition), end in ends.items()
            if end > 0
        ]
        return all(await asyncio.gather(*waits))

    @contextlib.contextmanager
    def follow(self, job_id: str) -> Iterator[FollowedJob]:
        """While open, the returned record tracks the job as the view has it."""
        if not self._followed and not self._waiters:
            self._wake.set()
        followed = self._followed.setdefault(job_id, FollowedJob())
        followed.followers += 1
        try:
            yield followed
        finally:
            followed.followers -= 1
            if followed.followers == 0:
                del self._followed[job_id]

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if self._waiters or self._followed:
                try:
                    await self._poll()
                except Exception:
                    # The view may be briefly unreadable (a replay switching files): try again;
                    # waiters still time out on their own deadlines.
                    log.warning("cannot read the view's positions", exc_info=True)
                self._settle_waiters(loop.time())
            self._wake.clear()
            if self._waiters:
                wake_up = loop.call_later(self._busy_poll, self._wake.set)
            elif self._followed:
                wake_up = loop.call_later(self._idle_poll, self._wake.set)
            else:
                wake_up = None  # nothing to watch: sleep until someone waits
            await self._wake.wait()
            if wake_up is not None:
                wake_up.cancel()

    async def _poll(self) -> None:
        positions = await read_view(self._view, self._view.positions)
        if positions != self._positions:
            self._positions = positions
            if self._followed:
                await self._refresh_followed()

    async def _refresh_followed(self) -> None:
        job_ids = list(self._followed)
        jobs = await read_view(self._view, self._view.load_jobs, job_ids)
        stored_by_radix = {
            radix: await read_view(self._view, self._view.stored_digits, radix)
            for radix in {job.radix for job in jobs.values()}
        }
        for job_id in job_ids:
            followed = self._followed.get(job_id)
            job = jobs.get(job_id)
            stored_digits = stored_by_radix[job.radix] if job is not None else 0
            if followed is None or (followed.job, followed.stored_digits) == (job, stored_digits):
                continue
            followed.job, followed.stored_digits = job, stored_digits
            followed.version += 1
            followed.changed.set()
            followed.changed = asyncio.Event()

    def _settle_waiters(self, now: float) -> None:
        for tp, waiters in list(self._waiters.items()):
            reached = self._positions.get(tp, 0)
            still_waiting = []
            for waiter in waiters:
                if waiter.done.done():  # the request went away
                    continue
                if reached > waiter.offset or now >= waiter.deadline:
                    waiter.done.set_result(reached > waiter.offset)
                else:
                    still_waiting.append(waiter)
            if still_waiting:
                self._waiters[tp] = still_waiting
            else:
                del self._waiters[tp]
