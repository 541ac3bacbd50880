"""The view in one SQLite file (WAL): one writer (the projector), any number of readers."""

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from services.shared.events import DIGITS_PER_CHUNK, DigitsStored
from services.shared.view import (
    JobView,
    Positions,
    listing_query,
    unfinished_jobs_query,
)

# The view holds nothing the log does not, so a new schema is not migrated: the writer drops the
# old tables and the projector rebuilds the view from offset 0.
SCHEMA_VERSION = 4
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    requested_us INTEGER NOT NULL,
    num INTEGER NOT NULL,
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
# Idle connections kept for reuse; more are opened while more threads read at once.
_MAX_IDLE_CONNECTIONS = 8


class SqliteView:
    """`path` may be a symbolic link: `make replay` builds a new file beside it, then swaps the
    link in one step.

    Connections come from a pool of idle ones, borrowed for one statement or transaction by any
    thread. The link is followed again every half second (by a thread of its own while nothing
    reads), and a connection to a file the link has left is closed as soon as it is idle: no
    process keeps a replaced file open, so its disk space comes back once the replay removes it.
    """

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
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []  # all to self._file
        self._file = path.resolve()
        self._checked_at = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._create_schema(drop_outdated=writer)
        self._stop_following = _follow_link(self)

    def current_file(self) -> Path:
        """The file the view is in now (follows the link afresh); idle connections to the one
        it was in before are closed."""
        file = self._path.resolve()
        with self._lock:
            self._checked_at = time.monotonic()
            moved = file != self._file
            self._file = file
            left, self._idle = (self._idle, []) if moved else ([], self._idle)
        for db in left:
            db.close()
        return file

    def _create_schema(self, drop_outdated: bool) -> None:
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(
                "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)"
            )
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
        # Borrowed by one thread at a time, though not always the same one.
        db = sqlite3.connect(file, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        return db

    def _borrow(self) -> tuple[sqlite3.Connection, Path]:
        """A connection to the current file, and that file: give it back when done."""
        if time.monotonic() - self._checked_at > self._RECHECK_SECONDS:
            self.current_file()
        with self._lock:
            file = self._file
            db = self._idle.pop() if self._idle else None
        return (db or self._connect(file)), file

    def _give_back(self, db: sqlite3.Connection, file: Path) -> None:
        """Back to the pool only if at rest and still on the view's file."""
        with self._lock:
            keep = (
                file == self._file
                and not db.in_transaction
                and len(self._idle) < _MAX_IDLE_CONNECTIONS
            )
            if keep:
                self._idle.append(db)
        if not keep:
            db.close()

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A connection for one statement or transaction."""
        db, file = self._borrow()
        try:
            yield db
        finally:
            self._give_back(db, file)

    def _fetchone(self, sql: str, params: Sequence[str | int] = ()) -> Any:
        db, file = self._borrow()  # not _connection(): this is the hot path's read
        try:
            return db.execute(sql, params).fetchone()
        finally:
            self._give_back(db, file)

    def _bodies(self, sql: str, params: Sequence[str | int] = ()) -> list[JobView]:
        with self._connection() as db:
            return [JobView.model_validate_json(body) for (body,) in db.execute(sql, params)]

    # Reading

    def get_job(self, job_id: str) -> JobView | None:
        row = self._fetchone("SELECT body FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else JobView.model_validate_json(row[0])

    def list_jobs(
        self,
        status: str | None,
        limit: int,
        before: tuple[int, str] | None,
        owner: str | None = None,
    ) -> list[JobView]:
        return self._bodies(*listing_query(status, limit, before, owner, "?"))

    def unfinished_jobs(self, larger_than: int = 0) -> list[JobView]:
        return self._bodies(unfinished_jobs_query("?"), (larger_than,))

    def count_by_status(self) -> dict[str, int]:
        with self._connection() as db:
            rows = db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        return {status: int(count) for status, count in rows}

    def stored_digits(self) -> int:
        with self._connection() as db:
            return _stored_digits(db)

    def iter_digits(self, count: int) -> Iterator[str]:
        last_chunk = (count - 1) // DIGITS_PER_CHUNK
        for chunk_index in range(last_chunk + 1):
            row = self._fetchone(
                "SELECT digits FROM digit_chunks WHERE chunk_index = ?", (chunk_index,)
            )
            if row is None:
                raise LookupError(f"digit chunk {chunk_index} is not in the view")
            digits: str = row[0]
            yield digits[: count - chunk_index * DIGITS_PER_CHUNK]

    def position(self, topic: str, partition: int) -> int:
        row = self._fetchone(
            "SELECT next_offset FROM positions WHERE topic = ? AND partition = ?",
            (topic, partition),
        )
        return 0 if row is None else int(row[0])

    # Writing (the projector)

    def generation(self) -> str:
        return str(self.current_file())

    def flush_to_disk(self) -> None:
        """Everything committed so far, in the database file and synced."""
        with self._connection() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with self._file.open("rb+") as file:
            os.fsync(file.fileno())

    def positions(self) -> dict[tuple[str, int], int]:
        with self._connection() as db:
            rows = db.execute("SELECT topic, partition, next_offset FROM positions").fetchall()
        return {(topic, partition): offset for topic, partition, offset in rows}

    def load_jobs(self, job_ids: Iterable[str]) -> dict[str, JobView]:
        wanted = list(set(job_ids))
        jobs = {}
        for start in range(0, len(wanted), 500):  # SQLite allows a bounded number of parameters
            some = wanted[start : start + 500]
            marks = ",".join("?" * len(some))
            for job in self._bodies(f"SELECT body FROM jobs WHERE job_id IN ({marks})", some):
                jobs[job.job_id] = job
        return jobs

    def commit(
        self, jobs: Iterable[JobView], chunks: Iterable[DigitsStored], positions: Positions
    ) -> None:
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(
                    "INSERT OR REPLACE INTO jobs (job_id, status, requested_us, num, owner, body) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    [
                        (j.job_id, j.status, j.requested_us, j.num, j.owner, j.model_dump_json())
                        for j in jobs
                    ],
                )
                # Every copy of a chunk holds the same digits, whoever computed it: keep the first.
                db.executemany(
                    "INSERT OR IGNORE INTO digit_chunks (chunk_index, digits) VALUES (?, ?)",
                    [(c.chunk_index, c.digits) for c in chunks],
                )
                db.executemany(
                    "INSERT OR REPLACE INTO positions (topic, partition, next_offset) "
                    "VALUES (?, ?, ?)",
                    [(topic, part, offset) for (topic, part), offset in positions.items()],
                )
                db.execute(
                    "INSERT OR REPLACE INTO meta (key, value) VALUES ('stored_digits', ?)",
                    (_contiguous_digits(db),),
                )
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def close(self) -> None:
        """Closes the idle connections (a later use opens new ones) and stops following."""
        self._stop_following.set()
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()


def _stored_digits(db: sqlite3.Connection) -> int:
    row = db.execute("SELECT value FROM meta WHERE key = 'stored_digits'").fetchone()
    return 0 if row is None else int(row[0])


def _contiguous_digits(db: sqlite3.Connection) -> int:
    """Chunks are whole: the stored prefix ends at the first missing chunk."""
    chunk_index = _stored_digits(db) // DIGITS_PER_CHUNK
    while db.execute("SELECT 1 FROM digit_chunks WHERE chunk_index = ?", (chunk_index,)).fetchone():
        chunk_index += 1
    return chunk_index * DIGITS_PER_CHUNK


def _follow_link(view: SqliteView) -> threading.Event:
    """Follows `view`'s link every half second while it lives, so that a process with nothing
    to read also lets go of a replaced file. Set the event returned to stop."""
    stop = threading.Event()
    alive = weakref.ref(view)

    def follow() -> None:
        while not stop.wait(SqliteView._RECHECK_SECONDS):
            current = alive()
            if current is None:
                return
            with contextlib.suppress(OSError):
                current.current_file()
            del current

    threading.Thread(target=follow, name="view-link", daemon=True).start()
    return stop
