"""SQLite-only checks; the store's contract is tests/integration/test_view_store_contract.py."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

from services.shared.sqlite_view import SqliteView
from services.shared.view import JobView
from tests.support import wait_until


def test_listing_uses_an_index_not_a_scan(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite3", writer=True)
    for status in (None, "queued"):
        where = "WHERE status = 'queued'" if status else ""
        with view._file._connection() as db:
            plan = " ".join(
                str(row[-1])
                for row in db.execute(
                    f"EXPLAIN QUERY PLAN SELECT body FROM jobs {where} "
                    "ORDER BY requested_us DESC, job_id DESC LIMIT 20"
                )
            )
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan


def files_open_here(folder: Path) -> set[str]:
    """What this process has open in `folder`; a deleted file shows as "NAME (deleted)"."""
    found = set()
    for fd in Path("/proc/self/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith(str(folder)):
            found.add(Path(target).name)
    return found


def test_a_replaced_file_is_let_go_by_every_thread_even_when_idle(tmp_path: Path) -> None:
    """After `make replay` swaps the link and removes the old file, no connection (in any
    thread, whether it reads again or not) keeps the old file, its -wal or its -shm open."""
    old, new, link = (tmp_path / n for n in ("view-1.sqlite3", "view-2.sqlite3", "view.sqlite3"))
    job = JobView(job_id="0" * 32, num=5, status="queued", requested_at=datetime.now(UTC))
    for file in (old, new):
        writer = SqliteView(file, writer=True)
        writer.commit([job], [], {("events", 0): 1})
        writer.close()
    link.symlink_to(old.name)
    reader = SqliteView(link)
    # Reads from three threads (each with a connection, before this pool), then none.
    together = threading.Barrier(3)

    def read_together(_: int) -> JobView | None:
        found = reader.get_job(job.job_id)
        together.wait(timeout=10)
        return found

    with ThreadPoolExecutor(3) as threads:
        assert all(threads.map(read_together, range(3)))
        assert old.name in files_open_here(tmp_path)

        staged = tmp_path / "staged"
        staged.symlink_to(new.name)
        staged.replace(link)
        for file in tmp_path.glob(f"{old.name}*"):  # as the replay does
            file.unlink()

        # Nothing reads meanwhile: the view follows the link on its own.
        wait_until(
            lambda: not {n for n in files_open_here(tmp_path) if n.startswith(old.name)},
            10,
            "every connection to the replaced file to be closed",
        )
    assert reader.get_job(job.job_id) == job
    reader.close()
