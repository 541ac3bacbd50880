"""SQLite-only checks; the store's contract is tests/integration/test_view_store_contract.py."""

import sqlite3
from pathlib import Path

from services.shared.sqlite_view import SqliteView


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


def test_a_view_from_before_schema_versions_is_rebuilt(tmp_path: Path) -> None:
    path = tmp_path / "view.sqlite3"
    with sqlite3.connect(path) as db:  # what the first release created
        db.executescript(
            "CREATE TABLE jobs (job_id TEXT PRIMARY KEY, requested_at TEXT, body TEXT);"
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);"
        )
    db.close()
    SqliteView(path)  # a reader leaves it for the projector
    view = SqliteView(path, writer=True)
    assert view.list_jobs(None, 10, None) == [] and view.positions() == {}
