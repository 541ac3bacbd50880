"""Read-your-writes even while the projector is behind or down: the view, plus the jobs this API
process accepted that the view does not show yet (as `queued`)."""

import threading
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from services.shared.events import JobRequested
from services.shared.view import JobView, ViewReader


class ViewWithAccepted:
    def __init__(self, view: ViewReader, capacity: int = 10_000) -> None:
        self._view = view
        self.reads_wait_on_network = view.reads_wait_on_network
        self._capacity = capacity
        self._accepted: OrderedDict[str, JobView] = OrderedDict()
        self._lock = threading.Lock()

    def remember(self, event: JobRequested) -> None:
        job = JobView.requested(event)
        with self._lock:
            self._accepted[event.job_id] = job
            while len(self._accepted) > self._capacity:
                self._accepted.popitem(last=False)

    def get_job(self, job_id: str) -> JobView | None:
        job = self._view.get_job(job_id)
        with self._lock:
            if job is not None:
                self._accepted.pop(job_id, None)
                return job
            return self._accepted.get(job_id)

    def load_jobs(self, job_ids: Iterable[str]) -> dict[str, JobView]:
        return self._view.load_jobs(job_ids)

    def list_jobs(
        self,
        status: str | None,
        limit: int,
        before: tuple[int, str] | None,
        owner: str | None = None,
    ) -> list[JobView]:
        return self._view.list_jobs(status, limit, before, owner)

    def unfinished_jobs(self, larger_than: int = 0) -> list[JobView]:
        return self._view.unfinished_jobs(larger_than)

    def count_by_status(self) -> dict[str, int]:
        return self._view.count_by_status()

    def stored_digits(self, radix: int = 10) -> int:
        return self._view.stored_digits(radix)

    def iter_digits(self, count: int, radix: int = 10) -> Iterator[str]:
        return self._view.iter_digits(count, radix)

    def read_digits(self, start: int, count: int, radix: int = 10) -> str:
        return self._view.read_digits(start, count, radix)

    def position(self, topic: str, partition: int) -> int:
        return self._view.position(topic, partition)

    def positions(self) -> dict[tuple[str, int], int]:
        return self._view.positions()
