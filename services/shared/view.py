"""The status view: what the projector builds from the log and the API and downloader read."""

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Literal, ParamSpec, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from services.shared.events import DigitsStored, JobRequested, Radix

JobStatus = Literal["queued", "in_progress", "complete", "failed", "cancelled"]
TERMINAL_STATUSES: frozenset[JobStatus] = frozenset({"complete", "failed", "cancelled"})

# (topic, partition) -> the next offset to read there.
Positions = Mapping[tuple[str, int], int]

_P = ParamSpec("_P")
_T = TypeVar("_T")


class JobView(BaseModel):
    model_config = ConfigDict(frozen=True)

    job_id: str
    num: int
    status: JobStatus
    requested_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    worker: str | None = None
    progress: float | None = None
    eta_seconds: float | None = None
    progress_at: datetime | None = None
    digits_source: str | None = None
    compute_seconds: float | None = None
    error: str | None = None
    owner: str | None = None
    radix: Radix = 10

    @property
    def requested_us(self) -> int:
        """When requested, in microseconds since the epoch: the listing's sort key."""
        return int(self.requested_at.timestamp() * 1_000_000)

    @classmethod
    def requested(cls, event: JobRequested) -> "JobView":
        """The job as its JobRequested makes it: queued."""
        return cls(
            job_id=event.job_id,
            num=event.num,
            status="queued",
            requested_at=event.occurred_at,
            owner=event.owner,
            radix=event.radix,
        )

    def as_seen_with(self, stored_digits: int) -> "JobView":
        """A job is complete to readers only once its digits (`stored_digits`: how many of its
        radix the view holds) are in the view too.

        Digits and job events travel on different topics, so the projector may see a job's
        JobCompleted before the digit chunks it needs.
        """
        if self.status == "complete" and stored_digits < self.num:
            return self.model_copy(update={"status": "in_progress"})
        return self


class ViewReader(Protocol):
    # True when a read is a network round trip (PostgreSQL): code on an event loop then reads in
    # a thread. A SQLite read is answered from this host's page cache in microseconds, inline.
    reads_wait_on_network: bool

    def get_job(self, job_id: str) -> JobView | None: ...

    def load_jobs(self, job_ids: Iterable[str]) -> dict[str, JobView]: ...

    def list_jobs(
        self,
        status: str | None,
        limit: int,
        before: tuple[int, str] | None,
        owner: str | None = None,
    ) -> list[JobView]:
        """Newest first; `before` is the (requested_us, job_id) of the last job of a page;
        with `owner`, only that owner's jobs."""
        ...

    def unfinished_jobs(self, larger_than: int = 0) -> list[JobView]:
        """The jobs queued or in progress for more than `larger_than` decimals."""
        ...

    def count_by_status(self) -> dict[str, int]: ...

    def stored_digits(self, radix: int = 10) -> int:
        """How many leading digits of pi (after the point, in `radix`) the view holds."""
        ...

    def iter_digits(self, count: int, radix: int = 10) -> Iterator[str]:
        """The first `count` digits, in pieces; count must not exceed stored_digits(radix)."""
        ...

    def read_digits(self, start: int, count: int, radix: int = 10) -> str:
        """Digits [start, start + count) after the point, reading only the chunks that hold
        them: any range within stored_digits(radix). ValueError for a negative start or count
        or an unknown radix; LookupError when a chunk of the range is not in the view."""
        ...

    def position(self, topic: str, partition: int) -> int: ...

    def positions(self) -> dict[tuple[str, int], int]:
        """Where the view has read each partition up to: it moves with every change."""
        ...


class ViewStore(ViewReader, Protocol):
    def generation(self) -> str:
        """Changes when the store is switched to a rebuilt one (`make replay`)."""
        ...

    def new_generation(self) -> "NewGeneration":
        """An empty view beside this one, to rebuild from the log and then switch to."""
        ...

    def commit(
        self, jobs: Iterable[JobView], chunks: Iterable[DigitsStored], positions: Positions
    ) -> None:
        """Write the changed jobs, digit chunks and the new read positions in one transaction."""
        ...

    def close(self) -> None: ...


class NewGeneration(Protocol):
    """A view being rebuilt beside the live one (`make replay`), whatever the backend."""

    @property
    def name(self) -> str:
        """What generation() answers once switched to."""
        ...

    @property
    def view(self) -> ViewStore:
        """The new view, empty at first: fill it, then switch."""
        ...

    def switch_to(self) -> None:
        """Make it the view in one step: every reader and the writer follow within a second and
        never see it half-built."""
        ...

    def retire_replaced(self) -> None:
        """Once readers have followed the switch: free what it replaced."""
        ...


async def read_view(
    view: ViewReader, read: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """A read of `view` from code on an event loop: inline when the store is on this host (a
    thread hop would cost more than the read), in a thread when it is across the network."""
    if view.reads_wait_on_network:
        return await asyncio.to_thread(read, *args, **kwargs)
    return read(*args, **kwargs)
