"""The status view: what the projector builds from the log and the API and downloader read."""

import asyncio
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import datetime
from typing import Literal, ParamSpec, Protocol, TypeVar

from pydantic import BaseModel, ConfigDict

from services.shared.events import DigitsStored, Radix

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

    def stored_digits(self) -> int:
        """How many leading decimals of pi the view holds."""
        ...

    def iter_digits(self, count: int) -> Iterator[str]:
        """The first `count` decimals, in pieces; count must not exceed stored_digits()."""
        ...

    def position(self, topic: str, partition: int) -> int: ...

    def positions(self) -> dict[tuple[str, int], int]:
        """Where the view has read each partition up to: it moves with every change."""
        ...


class ViewStore(ViewReader, Protocol):
    def generation(self) -> str:
        """Changes when the store is switched to a rebuilt one (`make replay`)."""
        ...

    def commit(
        self, jobs: Iterable[JobView], chunks: Iterable[DigitsStored], positions: Positions
    ) -> None:
        """Write the changed jobs, digit chunks and the new read positions in one transaction."""
        ...


async def read_view(
    view: ViewReader, read: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs
) -> _T:
    """A read of `view` from code on an event loop: inline when the store is on this host (a
    thread hop would cost more than the read), in a thread when it is across the network."""
    if view.reads_wait_on_network:
        return await asyncio.to_thread(read, *args, **kwargs)
    return read(*args, **kwargs)


def unfinished_jobs_query(mark: str) -> str:
    """The SQL of unfinished_jobs(larger_than), with `mark` as the parameter placeholder."""
    return f"SELECT body FROM jobs WHERE status IN ('queued', 'in_progress') AND num > {mark}"


def listing_query(
    status: str | None,
    limit: int,
    before: tuple[int, str] | None,
    owner: str | None,
    mark: str,
) -> tuple[str, list[str | int]]:
    """The SQL (with `mark` as the parameter placeholder) that lists jobs newest first, from
    after `before`, the (requested_us, job_id) of the last job of the previous page."""
    where: list[str] = []
    params: list[str | int] = []
    if owner is not None:
        where.append(f"owner = {mark}")
        params.append(owner)
    if status is not None:
        where.append(f"status = {mark}")
        params.append(status)
    if before is not None:
        where.append(f"(requested_us, job_id) < ({mark}, {mark})")
        params += list(before)
    sql = "SELECT body FROM jobs"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += f" ORDER BY requested_us DESC, job_id DESC LIMIT {mark}"
    return sql, [*params, limit]
