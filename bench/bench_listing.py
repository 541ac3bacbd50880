"""Listing jobs with 1,000,000 of them in the view: paging newest first, by status, counting.

.venv/bin/python bench/bench_listing.py [--jobs 1000000]
"""

import argparse
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.shared.sqlite_view import SqliteView
from services.shared.view import JobStatus, JobView

STATUSES: tuple[JobStatus, ...] = ("complete",) * 8 + ("failed", "cancelled")


def main(jobs: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        view = SqliteView(Path(tmp) / "view.sqlite3", writer=True, durable=False)
        start = datetime(2026, 1, 1, tzinfo=UTC)
        began = time.perf_counter()
        for batch in range(0, jobs, 10_000):
            view.commit(
                [
                    JobView(
                        job_id=f"{i:032x}",
                        num=1000,
                        status=STATUSES[i % len(STATUSES)],
                        requested_at=start + timedelta(seconds=i),
                    )
                    for i in range(batch, min(batch + 10_000, jobs))
                ],
                [],
                {},
            )
        print(f"{jobs:,} jobs written in {time.perf_counter() - began:.1f} s")
        for status in (None, "failed"):
            began = time.perf_counter()
            page = view.list_jobs(status, 20, None)
            for _ in range(50):
                page = view.list_jobs(status, 20, (page[-1].requested_us, page[-1].job_id))
            per_page = (time.perf_counter() - began) / 51 * 1000
            print(f"a page of 20 (status={status}): {per_page:.2f} ms")
        began = time.perf_counter()
        view.count_by_status()
        print(
            f"jobs by state (each /metrics scrape): {(time.perf_counter() - began) * 1000:.0f} ms"
        )
        view.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    main(parser.parse_args().jobs)
