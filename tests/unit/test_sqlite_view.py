from datetime import UTC, datetime
from pathlib import Path

from services.shared.events import DIGITS_PER_CHUNK, DigitsStored
from services.shared.sqlite_view import SqliteView
from services.shared.view import JobView

C = DIGITS_PER_CHUNK


def chunk(index: int, length: int, digit: str = "7") -> DigitsStored:
    return DigitsStored(chunk_index=index, digits=digit * length)


def test_jobs_and_positions_are_committed_together(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite3")
    job = JobView(job_id="a", num=3, status="queued", requested_at=datetime.now(UTC))
    view.commit([job], [], {("events", 2): 41})
    reopened = SqliteView(tmp_path / "view.sqlite3")
    assert reopened.get_job("a") == job
    assert reopened.position("events", 2) == 41 and reopened.position("events", 0) == 0
    assert reopened.get_job("missing") is None


def test_stored_digits_count_only_the_contiguous_prefix(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite3")
    view.commit([], [chunk(0, 12)], {})
    assert view.stored_digits() == 12
    view.commit([], [chunk(2, 5)], {})  # a gap: chunk 1 has not arrived
    assert view.stored_digits() == 12
    view.commit([], [chunk(0, C, "1"), chunk(1, C, "2")], {})
    assert view.stored_digits() == 2 * C + 5
    pieces = list(view.iter_digits(C + 3))
    assert pieces == ["1" * C, "222"]


def test_a_shorter_copy_of_a_chunk_never_replaces_a_longer_one(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite3")
    view.commit([], [chunk(0, 100)], {})
    view.commit([], [chunk(0, 10)], {})
    assert view.stored_digits() == 100
