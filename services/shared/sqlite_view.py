"""The view in one SQLite file (WAL): one writer (the projector), any number of readers."""

import os
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path

from services.shared.events import DIGITS_PER_CHUNK, DigitsStored
from services.shared.view import UNFINISHED_JOBS_QUERY, JobView, Positions, listing_query

# The view holds nothing the log does not, so a new schema is not migrated: the writer drops the
# old tables and the projector rebuilds the view from offset 0.
SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    requested_us INTEGER NOT NULL,
    owner TEXT,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_newest_first ON jobs (requested_us DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, requested_us DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, requested_us DESC, job_id DESC);
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
    """`path` may be a symbolic link: `make replay` builds a new file beside it, then swaps the
    link in one step. Every connection follows the link again within half a second."""

    _RECHECK_SECONDS = 0.5
    reads_wait_on_network = False

    def __init__(self, path: Path, writer: bool = False, durable: bool = True) -> None:
        """Readers open an existing view; the projector (the one writer) also creates it.

        Commits are not synced to disk one by one (WAL with synchronous=NORMAL): a crash of
        the host may take back the last of them, but never half of one, and the view's read
        positions go back with them, so the projector reads those events again from the log.
        `durable=False` does not even sync at checkpoints: for a rebuild, which calls
        `flush_to_disk()` before the view is used.
        """
        self._path = path
        self._synchronous = "NORMAL" if durable else "OFF"
        self._local = threading.local()
        self._file = path.resolve()
        self._checked_at = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._create_schema(drop_outdated=writer)

    def current_file(self) -> Path:
        """The file the view is in now (follows the link afresh)."""
        self._file = self._path.resolve()
        self._checked_at = time.monotonic()
        return self._file

    def _create_schema(self, drop_outdated: bool) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)")
        row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        tables = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'jobs'").fetchone()
        # The first release kept no version: its tables count as version 0.
        version = row[0] if row is not None else (0 if tables else None)
        if version is not None and version != SCHEMA_VERSION:
            if not drop_outdated:
                return  # the projector will rebuild it
            db.executescript(
                "DROP TABLE IF EXISTS jobs; DROP TABLE IF EXISTS digit_chunks;"
                "DROP TABLE IF EXISTS positions; DELETE FROM meta;"
            )
        db.executescript(_SCHEMA)
        db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)",
            (SCHEMA_VERSION,),
        )

    def _connect(self, file: Path) -> sqlite3.Connection:
        db = sqlite3.connect(file, timeout=30, isolation_level=None)
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        return db

    @property
    def _db(self) -> sqlite3.Connection:
        if time.monotonic() - self._checked_at > self._RECHECK_SECONDS:
            self.current_file()
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None or self._local.file != self._file:
            if db is not None:
                db.close()
            db = self._local.db = self._connect(self._file)
            self._local.file = self._file
        return db

    # Reading

    def get_job(self, job_id: str) -> JobView | None:
        row = self._db.execute("SELECT body FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return None if row is None else JobView.model_validate_json(row[0])

    def list_jobs(
        self,
        status: str | None,
        limit: int,
        before: tuple[int, str] | None,
        owner: str | None = None,
    ) -> list[JobView]:
        rows = self._db.execute(*listing_query(status, limit, before, owner, "?"))
        return [JobView.model_validate_json(body) for (body,) in rows]

    def unfinished_jobs(self) -> list[JobView]:
        rows = self._db.execute(UNFINISHED_JOBS_QUERY)
        return [JobView.model_validate_json(body) for (body,) in rows]

    def count_by_status(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, count(*) FROM jobs GROUP BY status")
        return {status: int(count) for status, count in rows}

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

    def generation(self) -> str:
        return str(self.current_file())

    def flush_to_disk(self) -> None:
        """Everything committed so far, in the database file and synced."""
        self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with self._file.open("rb+") as file:
            os.fsync(file.fileno())

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self._db.execute("SELECT topic, partition, next_offset FROM positions")
        return {(topic, partition): offset for topic, partition, offset in rows}

    def load_jobs(self, job_ids: Iterable[str]) -> dict[str, JobView]:
        wanted = list(set(job_ids))
        jobs = {}
        for start in range(0, len(wanted), 500):  # SQLite allows a bounded number of parameters
            some = wanted[start : start + 500]
            marks = ",".join("?" * len(some))
            for job_id, body in self._db.execute(
                f"SELECT job_id, body FROM jobs WHERE job_id IN ({marks})", some
            ):
                jobs[job_id] = JobView.model_validate_json(body)
        return jobs

    def commit(
        self, jobs: Iterable[JobView], chunks: Iterable[DigitsStored], positions: Positions
    ) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            db.executemany(
                "INSERT OR REPLACE INTO jobs (job_id, status, requested_us, owner, body) "
                "VALUES (?, ?, ?, ?, ?)",
                [(j.job_id, j.status, j.requested_us, j.owner, j.model_dump_json()) for j in jobs],
            )
            # Every copy of a chunk holds the same digits, whoever computed it: keep the first.
            db.executemany(
                "INSERT OR IGNORE INTO digit_chunks (chunk_index, digits) VALUES (?, ?)",
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
        """Chunks are whole: the stored prefix ends at the first missing chunk."""
        chunk_index = self.stored_digits() // DIGITS_PER_CHUNK
        while self._db.execute(
            "SELECT 1 FROM digit_chunks WHERE chunk_index = ?", (chunk_index,)
        ).fetchone():
            chunk_index += 1
        return chunk_index * DIGITS_PER_CHUNK

    def close(self) -> None:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
