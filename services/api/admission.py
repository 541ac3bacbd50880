"""Admission by cost: how much computation one client may have waiting, and the whole queue.

A job costs the decimals it asks for when they are not stored yet and there are more than
FREE_DECIMALS of them; others cost nothing (the stored digits answer them, or the engine
computes them in well under a second, each digit once for all the jobs that need it). Each
owner (an API key, or a client address) may have a budget of such decimals queued or running,
and the queue as a whole a cap; beyond them, 429.

Only costly submissions are checked, one at a time in each API process: each reads the view
after a read barrier (so it sees every job acknowledged before it) and is answered once the view
shows it, so two cannot both fit in the last of a budget. API processes do not wait for each
other: with P processes, a budget may be passed by at most P - 1 jobs submitted at the same
instant.
"""

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

from services.shared.events import Radix
from services.shared.radix import DECIMALS_PER_HEX_DIGIT, decimals_needed
from services.shared.view import JobView, ViewReader, read_view
from services.shared.web import ApiError

RETRY_AFTER_SECONDS = 60
FREE_DECIMALS = 1_000_000


@dataclass(frozen=True)
class CostLimits:
    per_owner: int  # decimals to compute, queued or running, of one owner
    queued: int  # of everyone


def free_up_to(stored_digits: int) -> int:
    """Jobs of at most this many decimals cost nothing."""
    return max(stored_digits, FREE_DECIMALS)


def refusal(
    owner: str, num: int, unfinished: Iterable[JobView], free: int, limits: CostLimits
) -> str | None:
    """Why a job of `num` decimals from `owner` is refused now, or None to accept it; jobs of
    at most `free` decimals cost nothing."""
    costly = [job for job in unfinished if _cost(job) > free]
    mine = [job for job in costly if job.owner == owner]
    my_decimals = sum(_cost(job) for job in mine)
    queued = sum(_cost(job) for job in costly)
    if my_decimals + num > limits.per_owner:
        return (
            f"{len(mine)} of your jobs are queued or running ({my_decimals:,} decimals to "
            f"compute); with {num:,} more you would pass your budget of {limits.per_owner:,}: "
            "retry when one has finished (or cancel one)"
        )
    if queued + num > limits.queued:
        return (
            f"the queue holds {queued:,} decimals to compute, its most is {limits.queued:,}: "
            f"retry in a few minutes"
        )
    return None


def _cost(job: JobView) -> int:
    return decimals_needed(job.num, job.radix)


class Admission:
    def __init__(
        self, limits: CostLimits, view: ViewReader, catch_up: Callable[[], Awaitable[None]]
    ) -> None:
        self._limits = limits
        self._view = view
        self._catch_up = catch_up  # until the view shows every job acknowledged before now
        self._costly = asyncio.Lock()

    @asynccontextmanager
    async def admit(self, owner: str, num: int, radix: Radix = 10) -> AsyncIterator[bool]:
        """Enter to submit a job: refused with a 429, or admitted. Yields whether the job is
        costly; a costly job must be in the view before the block ends."""
        view = self._view
        cost = decimals_needed(num, radix)  # what computing it takes, in decimals
        if cost <= FREE_DECIMALS or num <= await read_view(view, view.stored_digits, radix):
            yield False
            return
        async with self._costly:
            await self._catch_up()
            free = free_up_to(await read_view(view, view.stored_digits))
            # Every job that may cost more than `free`: a hexadecimal job costs more than its num.
            candidates = int(free / DECIMALS_PER_HEX_DIGIT)
            unfinished = await read_view(view, view.unfinished_jobs, candidates)
            why = refusal(owner, cost, unfinished, free, self._limits)
            if why is not None:
                raise ApiError(429, why, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
            yield True
