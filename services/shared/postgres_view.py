"""The view in PostgreSQL, for several hosts: one writer (the projector), any number of readers.

Same tables, rules and schema version as SqliteView. Connections come from a small pool of idle
ones, borrowed for one statement or transaction: the servers' threadpools start and end threads
all the time, and a streamed download moves between threads from one chunk to the next.
"""

import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import psycopg

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
# COLLATE "C": ids and cursors compare bytewise, as in SQLite, whatever the database's locale.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT COLLATE "C" PRIMARY KEY,
    status TEXT COLLATE "C" NOT NULL,
    requested_us BIGINT NOT NULL,
    num BIGINT NOT NULL,
    owner TEXT COLLATE "C",
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_newest_first ON jobs (requested_us DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, requested_us DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, requested_us DESC, job_id DESC);
CREATE TABLE IF NOT EXISTS digit_chunks (
    chunk_index BIGINT PRIMARY KEY,
    digits TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL);
"""
_DROP_OUTDATED = "DROP TABLE IF EXISTS jobs, digit_chunks, positions; DELETE FROM meta;"
_SET_META = (
    "INSERT INTO meta (key, value) VALUES (%s, %s) "
    "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value"
)
# Serialises schema changes and commits, as SQLite's BEGIN IMMEDIATE does: a second projector
# (a failover, a rebalance) must not compute stored_digits without the other's chunks.
_WRITE_LOCK = 0x70692D6A6F6273  # "pi-jobs"
# Idle connections kept for reuse; more are opened while more threads read at once.
_MAX_IDLE_CONNECTIONS = 8

# `make replay` builds a new generation of the view in a schema of its own, then points this
# one-row table (in the URL's own schema) at it; every PostgresView follows within half a second.
_GENERATION_TABLE = "pi_jobs_view_generation"
_GENERATION_NAME = re.compile(r"^pi_view_[0-9a-z_]{1,40}$")

_T = TypeVar("_T")
_Connection = psycopg.Connection[tuple[Any, ...]]


def _schema_version(db: _Connection) -> int | None:
    """None for no view at all; tables without a version count as version 0."""
    found = db.execute("SELECT to_regclass('meta') IS NOT NULL").fetchone()
    if not (found and found[0]):
        jobs = db.execute("SELECT to_regclass('jobs') IS NOT NULL").fetchone()
        return 0 if jobs and jobs[0] else None
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    return 0 if row is None else int(row[0])


class PostgresView:
    _RECHECK_SECONDS = 0.5
    reads_wait_on_network = True

    def __init__(self, url: str, writer: bool = False, generation: str | None = None) -> None:
        """Readers open an existing view (creating an absent one); the writer also renews it.

        `generation`: build that generation (a schema) rather than follow the current one.
        """
        self._url = url
        self._idle: list[_Connection] = []
        self._lock = threading.Lock()
        self._fixed_generation = generation
        self._generation: str | None = generation
        self._checked_at = time.monotonic()
        # What each open connection's search_path is set to: None is the URL's own.
        self._search_path: dict[int, str | None] = {}
        self._base_path: dict[int, str] = {}
        if generation is not None:
            _check_generation_name(generation)
            with self._connection(follow=False) as db:
                db.execute(f'CREATE SCHEMA IF NOT EXISTS "{generation}"')
        else:
            self._generation = self._read_generation()
        self._create_schema(drop_outdated=writer)

    def generation(self) -> str:
        """Changes when `make replay` switches the view to a rebuilt one."""
        if self._fixed_generation is None:
            self._generation = self._read_generation()
            self._checked_at = time.monotonic()
        return self._generation or "base"

    def _current_generation(self) -> str | None:
        if self._fixed_generation is not None:
            return self._fixed_generation
        if time.monotonic() - self._checked_at > self._RECHECK_SECONDS:
            self._generation = self._read_generation()
            self._checked_at = time.monotonic()
        return self._generation

    def _read_generation(self) -> str | None:
        with self._connection(follow=False) as db:
            found = db.execute(f"SELECT to_regclass('{_GENERATION_TABLE}') IS NOT NULL").fetchone()
            if not (found and found[0]):
                return None
            row = db.execute(f"SELECT name FROM {_GENERATION_TABLE}").fetchone()
            return None if row is None else str(row[0])

    def _create_schema(self, drop_outdated: bool) -> None:
        def keep(version: int | None) -> bool:
            return version == SCHEMA_VERSION or (version is not None and not drop_outdated)

        with self._connection() as db:
            if keep(_schema_version(db)):  # no writes: readers may hold a read-only role
                return
            with db.transaction():
                db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                version = _schema_version(db)
                if keep(version):
                    return
                if version is not None:
                    db.execute(_DROP_OUTDATED)
                db.execute(_SCHEMA)
                db.execute(_SET_META, ("schema_version", SCHEMA_VERSION))

    # Connections

    @contextmanager
    def _connection(self, follow: bool = True) -> Iterator[_Connection]:
        """A connection at the current generation (`follow=False`: at the URL's own schema)."""
        with self._lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = psycopg.connect(self._url, autocommit=True)
            path = db.execute("SHOW search_path").fetchone()
            self._base_path[id(db)] = str(path[0]) if path else "public"
            self._search_path[id(db)] = None
        wanted = self._current_generation() if follow else None
        if self._search_path.get(id(db)) != wanted:
            target = f'"{wanted}"' if wanted else self._base_path[id(db)]
            db.execute(f"SET search_path TO {target}")
            self._search_path[id(db)] = wanted
        try:
            yield db
        finally:
            # Only a connection at rest goes back (not one interrupted mid-query).
            reusable = db.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
            with self._lock:
                if reusable and len(self._idle) < _MAX_IDLE_CONNECTIONS:
                    self._idle.append(db)
                    db = None
            if db is not None:
                self._forget(db)

    def _forget(self, db: _Connection) -> None:
        self._search_path.pop(id(db), None)
        self._base_path.pop(id(db), None)
        db.close()

    def _run(self, work: Callable[[_Connection], _T]) -> _T:
        """Run `work`, once more on a new connection if its connection turned out to be dead.

        Idle connections die when the server restarts or fails over. Every use of the view is
        safe to repeat: reads, and commits (upserts of the same rows).
        """
        for attempt in (1, 2):
            with self._connection() as db:
                try:
                    return work(db)
                except psycopg.OperationalError:
                    if attempt == 2 or not db.closed:
                        raise
            self.close()  # the other idle connections are likely dead too
        raise AssertionError("unreachable")

    def _fetchone(self, sql: str, params: tuple[Any, ...]) -> tuple[Any, ...] | None:
        return self._run(lambda db: db.execute(sql, params).fetchone())

    # Reading

    def get_job(self, job_id: str) -> JobView | None:
        row = self._fetchone("SELECT body FROM jobs WHERE job_id = %s", (job_id,))
        return None if row is None else JobView.model_validate_json(row[0])

    def list_jobs(
        self,
        status: str | None,
        limit: int,
        before: tuple[int, str] | None,
        owner: str | None = None,
    ) -> list[JobView]:
        sql, params = listing_query(status, limit, before, owner, "%s")
        rows = self._run(lambda db: db.execute(sql, params).fetchall())
        return [JobView.model_validate_json(body) for (body,) in rows]

    def unfinished_jobs(self, larger_than: int = 0) -> list[JobView]:
        sql = unfinished_jobs_query("%s")
        rows = self._run(lambda db: db.execute(sql, (larger_than,)).fetchall())
        return [JobView.model_validate_json(body) for (body,) in rows]

    def count_by_status(self) -> dict[str, int]:
        rows = self._run(
            lambda db: db.execute("SELECT status, count(*) FROM jobs GROUP BY status").fetchall()
        )
        return {status: int(count) for status, count in rows}

    def stored_digits(self) -> int:
        row = self._fetchone("SELECT value FROM meta WHERE key = %s", ("stored_digits",))
        return 0 if row is None else int(row[0])

    def iter_digits(self, count: int) -> Iterator[str]:
        last_chunk = (count - 1) // DIGITS_PER_CHUNK
        for chunk_index in range(last_chunk + 1):
            row = self._fetchone(
                "SELECT digits FROM digit_chunks WHERE chunk_index = %s", (chunk_index,)
            )
            if row is None:
                raise LookupError(f"digit chunk {chunk_index} is not in the view")
            digits: str = row[0]
            yield digits[: count - chunk_index * DIGITS_PER_CHUNK]

    def position(self, topic: str, partition: int) -> int:
        row = self._fetchone(
            "SELECT next_offset FROM positions WHERE topic = %s AND partition = %s",
            (topic, partition),
        )
        return 0 if row is None else int(row[0])

    # Writing (the projector)

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self._run(
            lambda db: db.execute("SELECT topic, partition, next_offset FROM positions").fetchall()
        )
        return {(topic, partition): offset for topic, partition, offset in rows}

    def load_jobs(self, job_ids: Iterable[str]) -> dict[str, JobView]:
        wanted = list(set(job_ids))
        if not wanted:
            return {}
        rows = self._run(
            lambda db: db.execute(
                "SELECT job_id, body FROM jobs WHERE job_id = ANY(%s)", (wanted,)
            ).fetchall()
        )
        return {job_id: JobView.model_validate_json(body) for job_id, body in rows}

    def commit(
        self, jobs: Iterable[JobView], chunks: Iterable[DigitsStored], positions: Positions
    ) -> None:
        # Materialised first, so that a retry on a new connection writes the same rows.
        job_rows = [
            (j.job_id, j.status, j.requested_us, j.num, j.owner, j.model_dump_json()) for j in jobs
        ]
        chunk_rows = [(c.chunk_index, c.digits) for c in chunks]
        position_rows = [(topic, part, offset) for (topic, part), offset in positions.items()]

        def write(db: _Connection) -> None:
            with db.transaction(), db.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                cursor.executemany(
                    "INSERT INTO jobs (job_id, status, requested_us, num, owner, body) "
                    "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (job_id) DO UPDATE SET "
                    "status = EXCLUDED.status, requested_us = EXCLUDED.requested_us, "
                    "num = EXCLUDED.num, owner = EXCLUDED.owner, body = EXCLUDED.body",
                    job_rows,
                )
                # Every copy of a chunk holds the same digits, whoever computed it: keep the first.
                cursor.executemany(
                    "INSERT INTO digit_chunks (chunk_index, digits) VALUES (%s, %s) "
                    "ON CONFLICT (chunk_index) DO NOTHING",
                    chunk_rows,
                )
                cursor.executemany(
                    "INSERT INTO positions (topic, partition, next_offset) VALUES (%s, %s, %s) "
                    "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = "
                    "EXCLUDED.next_offset",
                    position_rows,
                )
                cursor.execute(_SET_META, ("stored_digits", _contiguous_digits(db)))

        self._run(write)

    def close(self) -> None:
        """Close the idle connections; the view reconnects if it is used again."""
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            self._forget(db)


def _contiguous_digits(db: _Connection) -> int:
    """Chunks are whole: the stored prefix ends at the first missing chunk."""
    row = db.execute("SELECT value FROM meta WHERE key = 'stored_digits'").fetchone()
    first = (0 if row is None else int(row[0])) // DIGITS_PER_CHUNK
    # The first missing index from `first` on: `first` itself, or one past a chunk with no next.
    end = db.execute(
        "SELECT CASE WHEN NOT EXISTS (SELECT 1 FROM digit_chunks WHERE chunk_index = %(first)s) "
        "THEN %(first)s ELSE ("
        "  SELECT c.chunk_index + 1 FROM digit_chunks c WHERE c.chunk_index >= %(first)s"
        "  AND NOT EXISTS (SELECT 1 FROM digit_chunks n WHERE n.chunk_index = c.chunk_index + 1)"
        "  ORDER BY c.chunk_index LIMIT 1"
        ") END",
        {"first": first},
    ).fetchone()
    assert end is not None
    return int(end[0]) * DIGITS_PER_CHUNK


def _check_generation_name(name: str) -> None:
    if not _GENERATION_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a view generation name (pi_view_...)")


def switch_generation(url: str, generation: str) -> None:
    """Point every PostgresView of `url` at `generation`, in one transaction, then drop the
    generations before the previous one (readers may still be on that for a moment)."""
    _check_generation_name(generation)
    with psycopg.connect(url, autocommit=True) as db:
        with db.transaction():
            db.execute(f"CREATE TABLE IF NOT EXISTS {_GENERATION_TABLE} (name TEXT NOT NULL)")
            row = db.execute(f"SELECT name FROM {_GENERATION_TABLE} FOR UPDATE").fetchone()
            previous = None if row is None else str(row[0])
            db.execute(f"DELETE FROM {_GENERATION_TABLE}")
            db.execute(f"INSERT INTO {_GENERATION_TABLE} (name) VALUES (%s)", (generation,))
        names = db.execute(
            "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pi\\_view\\_%'"
        ).fetchall()
        for (name,) in names:
            if name not in (generation, previous) and _GENERATION_NAME.fullmatch(name):
                db.execute(f'DROP SCHEMA "{name}" CASCADE')
