from datetime import UTC, datetime, timedelta
from pathlib import Path

from services.shared.events import DIGITS_PER_CHUNK, DigitsStored
from services.shared.sqlite_view import SqliteView
from services.shared.view import JobView

C = DIGITS_PER_CHUNK
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def chunk(index: int, digit: str = "7") -> DigitsStored:
    return DigitsStored(chunk_index=index, digits=digit * C)


def job(job_id: str, seconds: int, status: str = "queued") -> JobView:
    return JobView.model_validate(
        {
            "job_id": job_id,
            "num": 3,
            "status": status,
            "requested_at": T0 + timedelta(seconds=seconds),
        }
    )


def test_jobs_and_positions_are_committed_together(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite3", writer=True)
    view.commit([job("a", 0)], [], {("events", 2): 41})
    reopened = SqliteView(tmp_path / "view.sqlite3")
    assert reopened.get_job("a") == job("a", 0)
    assert reopened.position("events", 2) == 41 and reopened.position("events", 0) == 0
    assert reopened.get_job("missing") is None


def test_stored_digits_count_only_the_contiguous_prefix(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite3", writer=True)
    view.commit([], [chunk(0, "1")], {})
    assert view.stored_digits() == C
    view.commit([], [chunk(2, "3")], {})  # a gap: chunk 1 has not arrived
    assert view.stored_digits() == C
    view.commit([], [chunk(1, "2"), chunk(0, "9")], {})
    assert view.stored_digits() == 3 * C
    assert list(view.iter_digits(C + 3)) == ["1" * C, "222"]  # the first copy of chunk 0 stays


def test_jobs_are_listed_newest_first_by_page_and_status(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite3", writer=True)
    jobs = [job(f"j{i}", i, "complete" if i % 2 else "queued") for i in range(7)]
    view.commit(jobs, [], {})
    first = view.list_jobs(None, 3, None)
    assert [j.job_id for j in first] == ["j6", "j5", "j4"]
    last = first[-1]
    second = view.list_jobs(None, 3, (int(last.requested_at.timestamp() * 1e6), last.job_id))
    assert [j.job_id for j in second] == ["j3", "j2", "j1"]
    assert [j.job_id for j in view.list_jobs("complete", 10, None)] == ["j5", "j3", "j1"]


def test_listing_uses_an_index_not_a_scan(tmp_path: Path) -> None:
    view = SqliteView(tmp_path / "view.sqlite3", writer=True)
    db = view._db
    for status in (None, "queued"):
        where = "WHERE status = 'queued'" if status else ""
        plan = " ".join(
            str(row[-1])
            for row in db.execute(
                f"EXPLAIN QUERY PLAN SELECT body FROM jobs {where} "
                "ORDER BY requested_us DESC, job_id DESC LIMIT 20"
            )
        )
        assert "USING INDEX" in plan and "TEMP B-TREE" not in plan, plan


def test_an_outdated_view_is_dropped_by_the_writer_for_a_rebuild(tmp_path: Path) -> None:
    path = tmp_path / "view.sqlite3"
    view = SqliteView(path, writer=True)
    view.commit([job("a", 0)], [], {("events", 0): 5})
    view._db.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
    SqliteView(path)  # a reader leaves it alone
    assert SqliteView(path).get_job("a") is not None
    rebuilt = SqliteView(path, writer=True)
    assert rebuilt.get_job("a") is None and rebuilt.positions() == {}
