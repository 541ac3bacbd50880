"""The view in one SQLite file (WAL): one writer (the projector), any number of readers."""

import sqlite3
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from services.shared.events import DIGITS_PER_CHUNK, DigitsStored
from services.shared.view import JobView, Positions

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    requested_at TEXT NOT NULL,
    body TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS digit_chunks (
    chunk_index INTEGER PRIMARY KEY,
    digits TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset INTEGER NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class SqliteView:
    def __init__(self, path: Path) -> None:
        self._path = path
        self._local = threading.local()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=30, isolation_level=None)
        db.execute("PRAGMA synchronous=FULL")
        return db

    @property
    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            db = self._local.db = self._connect()
        return db

    # Reading

    def get_job(self, job_id: str) -> JobView | None:
        row = self._db.execute("SELECT body FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else JobView.model_validate_json(row[0])

    def stored_digits(self) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = 'stored_digits'").fetchone()
        return 0 if row is None else int(row[0])

    def iter_digits(self, count: int) -> Iterator[str]:
        last_chunk = (count - 1) // DIGITS_PER_CHUNK
        for chunk_index in range(last_chunk + 1):
            row = self._db.execute(
                "SELECT digits FROM digit_chunks WHERE chunk_index = ?", (chunk_index,)
            ).fetchone()
            if row is None:
                raise LookupError(f"digit chunk {chunk_index} is not in the view")
            digits: str = row[0]
            yield digits[: count - chunk_index * DIGITS_PER_CHUNK]

    def position(self, topic: str, partition: int) -> int:
        row = self._db.execute(
            "SELECT next_offset FROM positions WHERE topic = ? AND partition = ?",
            (topic, partition),
        ).fetchone()
        return 0 if row is None else int(row[0])

    # Writing (the projector)

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT topic, partition, next_offset FROM positions")
        return {(topic, partition): offset for topic, partition, offset in rows}

    def load_jobs(self, job_ids: Iterable[str]) -> dict[str, JobView]:
        jobs = {}
        for job_id in set(job_ids):
            job = self.get_job(job_id)
            if job is not None:
                jobs[job_id] = job
        return jobs

    def commit(
        self, jobs: Iterable[JobView], chunks: Iterable[DigitsStored], positions: Positions
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO jobs (job_id, requested_at, body) VALUES (?, ?, ?)",
                [(j.job_id, j.requested_at.isoformat(), j.model_dump_json()) for j in jobs],
            )
            # A bigger job republishes a partial chunk, longer: keep the longest.
            db.executemany(
                """INSERT INTO digit_chunks (chunk_index, digits) VALUES (?, ?)
                   ON CONFLICT (chunk_index) DO UPDATE SET digits = excluded.digits
                   WHERE length(excluded.digits) > length(digit_chunks.digits)""",
                [(c.chunk_index, c.digits) for c in chunks],
            )
            db.executemany(
                "INSERT OR REPLACE INTO positions (topic, partition, next_offset) VALUES (?, ?, ?)",
                [(topic, partition, offset) for (topic, partition), offset in positions.items()],
            )
            db.execute(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('stored_digits', ?)",
                (self._contiguous_digits(),),
            )
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            raise

    def _contiguous_digits(self) -> int:
        stored = self.stored_digits()
        chunk_index = stored // DIGITS_PER_CHUNK
        while True:
            row = self._db.execute(
                "SELECT length(digits) FROM digit_chunks WHERE chunk_index = ?", (chunk_index,)
            ).fetchone()
            if row is None:
                return chunk_index * DIGITS_PER_CHUNK
            if row[0] < DIGITS_PER_CHUNK:
                return chunk_index * DIGITS_PER_CHUNK + int(row[0])
            chunk_index += 1

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
