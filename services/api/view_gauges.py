"""The API's own Prometheus metrics: the view's jobs by state and stored digits, read at each
scrape (with several API processes, the latest reading counts)."""

from collections.abc import Callable
from typing import get_args

from prometheus_client import Gauge

from services.shared.view import JobStatus, ViewReader

JOBS_BY_STATE = Gauge(
    "pi_jobs_jobs", "Jobs in the view, by state", ["state"], multiprocess_mode="mostrecent"
)
STORED_DIGITS = Gauge(
    "pi_jobs_stored_digits",
    "Leading decimals of pi stored in the view",
    multiprocess_mode="mostrecent",
)


def view_gauges(view: ViewReader) -> Callable[[], None]:
    """Sets the gauges read from the view, for a /metrics that serves them."""

    def update() -> None:
        counts = view.count_by_status()
        for state in get_args(JobStatus):
            JOBS_BY_STATE.labels(state).set(counts.get(state, 0))
        STORED_DIGITS.set(view.stored_digits())

    return update
