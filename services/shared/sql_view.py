"""The view store's core, the same on every SQL backend: the schema, the reads and the commit.

A backend (sqlite_view.py, postgres_view.py) adds only what differs: its connections, the
column type that compares ids bytewise, how writers are serialised, and how a rebuilt
generation of the view replaces the live one. SQL is written here with `?` marks.
"""

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, Protocol, TypeVar

from services.shared.events import DIGITS_PER_CHUNK, DigitsStored
from services.shared.view import JobView, NewGeneration, Positions

# The view holds nothing the log does not, so a new schema is not migrated: the writer drops the
# old tables and the projector rebuilds the view from offset 0.
# 5: digit chunks keyed by (radix, chunk_index), a stored prefix per radix.
SCHEMA_VERSION = 5
_TABLES = ("jobs", "digit_chunks", "positions", "meta")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id {text} PRIMARY KEY,
    status {text} NOT NULL,
    requested_us BIGINT NOT NULL,
    num BIGINT NOT NULL,
    owner {text},
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_newest_first ON jobs (requested_us DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_status ON jobs (status, requested_us DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_by_owner ON jobs (owner, requested_us DESC, job_id DESC);
CREATE TABLE IF NOT EXISTS digit_chunks (
    radix INTEGER NOT NULL,
    chunk_index BIGINT NOT NULL,
    digits TEXT NOT NULL,
    PRIMARY KEY (radix, chunk_index)
);
CREATE TABLE IF NOT EXISTS positions (
    topic TEXT NOT NULL,
    partition INTEGER NOT NULL,
    next_offset BIGINT NOT NULL,
    PRIMARY KEY (topic, partition)
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)
"""
_SET_META = (
    "INSERT INTO meta (key, value) VALUES (?, ?) "
    "ON CONFLICT (key) DO UPDATE SET value = excluded.value"
)
_UPSERT_JOB = (
    "INSERT INTO jobs (job_id, status, requested_us, num, owner, body) VALUES (?, ?, ?, ?, ?, ?) "
    "ON CONFLICT (job_id) DO UPDATE SET status = excluded.status, "
    "requested_us = excluded.requested_us, num = excluded.num, owner = excluded.owner, "
    "body = excluded.body"
)
# Every copy of a chunk holds the same digits, whoever computed it: keep the first.
_INSERT_CHUNK = (
    "INSERT INTO digit_chunks (radix, chunk_index, digits) VALUES (?, ?, ?) "
    "ON CONFLICT (radix, chunk_index) DO NOTHING"
)
_UPSERT_POSITION = (
    "INSERT INTO positions (topic, partition, next_offset) VALUES (?, ?, ?) "
    "ON CONFLICT (topic, partition) DO UPDATE SET next_offset = excluded.next_offset"
)
# The first missing chunk index from ? on (the old end of the prefix): that one, or one past a
# chunk with no next.
_PREFIX_END = """
SELECT CASE WHEN NOT EXISTS (
    SELECT 1 FROM digit_chunks WHERE radix = ? AND chunk_index = ?
) THEN ? ELSE (
    SELECT c.chunk_index + 1 FROM digit_chunks c WHERE c.radix = ? AND c.chunk_index >= ?
    AND NOT EXISTS (
        SELECT 1 FROM digit_chunks n WHERE n.radix = c.radix AND n.chunk_index = c.chunk_index + 1
    )
    ORDER BY c.chunk_index LIMIT 1
) END
"""
RADIXES = (10, 16)

_T = TypeVar("_T")


class SqlCursor(Protocol):
    """What the core needs of a DB-API cursor (sqlite3's and psycopg's have it)."""

    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Any: ...

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]], /) -> object: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class SqlBackend(Protocol):
    """A database's part of a view store: connections and how writers take turns."""

    # True when a read is a network round trip (see ViewReader).
    reads_wait_on_network: bool
    # The column type of ids and statuses: compared bytewise, as the listing cursor needs.
    text_type: str

    def read(self, work: Callable[[SqlCursor], _T]) -> _T:
        """`work` on a cursor of a connection at rest, borrowed for it alone."""
        ...

    def write(self, work: Callable[[SqlCursor], _T]) -> _T:
        """`work` in one transaction, writers one at a time; it may be run again (on a new
        connection), so it must be safe to repeat."""
        ...

    def table_exists(self, cursor: SqlCursor, name: str) -> bool: ...

    def generation(self) -> str: ...

    def close(self) -> None: ...


def stored_digits_key(radix: int) -> str:
    return f"stored_digits_{radix}"


def _check_radix(radix: int) -> None:
    if radix not in RADIXES:
        raise ValueError(f"radix must be one of {RADIXES}, not {radix}")


class SqlView(ABC):
    """A ViewStore on any SQL backend: one writer (the projector), any number of readers."""

    def __init__(self, backend: SqlBackend, writer: bool) -> None:
        """Readers open an existing view (creating an absent one); the writer also drops one of
        an older schema, for the projector to rebuild from the log."""
        self._backend = backend
        self.reads_wait_on_network = backend.reads_wait_on_network
        self._create_schema(drop_outdated=writer)

    def _create_schema(self, drop_outdated: bool) -> None:
        def keep(version: int | None) -> bool:
            return version == SCHEMA_VERSION or (version is not None and not drop_outdated)

        if keep(self._backend.read(self._schema_version)):  # readers may not be allowed to write
            return

        def renew(cursor: SqlCursor) -> None:
            version = self._schema_version(cursor)  # again: another writer may have renewed it
            if keep(version):
                return
            if version is not None:
                for table in _TABLES:
                    cursor.execute(f"DROP TABLE IF EXISTS {table}")
            for statement in _SCHEMA.format(text=self._backend.text_type).split(";"):
                cursor.execute(statement)
            cursor.execute(_SET_META, ("schema_version", SCHEMA_VERSION))

        self._backend.write(renew)

    def _schema_version(self, cursor: SqlCursor) -> int | None:
        """None for no view at all; tables without a version count as version 0 (the first
        release kept none)."""
        if not self._backend.table_exists(cursor, "meta"):
            return 0 if self._backend.table_exists(cursor, "jobs") else None
        row = cursor.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return 0 if row is None else int(row[0])

    def _fetchone(self, sql: str, params: Sequence[Any] = ()) -> Any:
        return self._backend.read(lambda cursor: cursor.execute(sql, params).fetchone())

    def _fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._backend.read(lambda cursor: cursor.execute(sql, params).fetchall())

    def _bodies(self, sql: str, params: Sequence[Any] = ()) -> list[JobView]:
        return [JobView.model_validate_json(body) for (body,) in self._fetchall(sql, params)]

    # Reading

    def get_job(self, job_id: str) -> JobView | None:
        row = self._fetchone("SELECT body FROM jobs WHERE job_id = ?", (job_id,))
        return None if row is None else JobView.model_validate_json(row[0])

    def load_jobs(self, job_ids: Iterable[str]) -> dict[str, JobView]:
        wanted = list(set(job_ids))
        jobs = {}
        for start in range(0, len(wanted), 500):  # SQLite allows a bounded number of parameters
            some = wanted[start : start + 500]
            marks = ",".join("?" * len(some))
            for job in self._bodies(f"SELECT body FROM jobs WHERE job_id IN ({marks})", some):
                jobs[job.job_id] = job
        return jobs

    def list_jobs(
        self,
        status: str | None,
        limit: int,
        before: tuple[int, str] | None,
        owner: str | None = None,
    ) -> list[JobView]:
        where: list[str] = []
        params: list[str | int] = []
        for column, value in (("owner", owner), ("status", status)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if before is not None:  # the (requested_us, job_id) of the last job of a page
            where.append("(requested_us, job_id) < (?, ?)")
            params += before
        sql = "SELECT body FROM jobs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return self._bodies(
            f"{sql} ORDER BY requested_us DESC, job_id DESC LIMIT ?", [*params, limit]
        )

    def unfinished_jobs(self, larger_than: int = 0) -> list[JobView]:
        return self._bodies(
            "SELECT body FROM jobs WHERE status IN ('queued', 'in_progress') AND num > ?",
            (larger_than,),
        )

    def count_by_status(self) -> dict[str, int]:
        rows = self._fetchall("SELECT status, count(*) FROM jobs GROUP BY status")
        return {status: int(count) for status, count in rows}

    def stored_digits(self, radix: int = 10) -> int:
        row = self._fetchone("SELECT value FROM meta WHERE key = ?", (stored_digits_key(radix),))
        return 0 if row is None else int(row[0])

    def iter_digits(self, count: int, radix: int = 10) -> Iterator[str]:
        for chunk_index in range((count + DIGITS_PER_CHUNK - 1) // DIGITS_PER_CHUNK):
            row = self._fetchone(
                "SELECT digits FROM digit_chunks WHERE radix = ? AND chunk_index = ?",
                (radix, chunk_index),
            )
            if row is None:
                raise LookupError(f"radix-{radix} digit chunk {chunk_index} is not in the view")
            digits: str = row[0]
            yield digits[: count - chunk_index * DIGITS_PER_CHUNK]

    def read_digits(self, start: int, count: int, radix: int = 10) -> str:
        if start < 0 or count < 0:
            raise ValueError(f"start and count must not be negative, not {start} and {count}")
        _check_radix(radix)
        if count == 0:
            return ""
        first, last = start // DIGITS_PER_CHUNK, (start + count - 1) // DIGITS_PER_CHUNK
        rows = self._fetchall(
            "SELECT digits FROM digit_chunks WHERE radix = ? AND chunk_index BETWEEN ? AND ? "
            "ORDER BY chunk_index",
            (radix, first, last),
        )
        if len(rows) != last - first + 1:
            raise LookupError(
                f"radix-{radix} digits [{start}, {start + count}) are not all in the view"
            )
        skip = start - first * DIGITS_PER_CHUNK
        return "".join(digits for (digits,) in rows)[skip : skip + count]

    def position(self, topic: str, partition: int) -> int:
        row = self._fetchone(
            "SELECT next_offset FROM positions WHERE topic = ? AND partition = ?",
            (topic, partition),
        )
        return 0 if row is None else int(row[0])

    def positions(self) -> dict[tuple[str, int], int]:
        rows = self._fetchall("SELECT topic, partition, next_offset FROM positions")
        return {(topic, partition): int(offset) for topic, partition, offset in rows}

    # Writing (the projector)

    def generation(self) -> str:
        """Changes when the store is switched to a rebuilt one (`make replay`)."""
        return self._backend.generation()

    @abstractmethod
    def new_generation(self) -> NewGeneration:
        """An empty view beside this one, to rebuild from the log and then switch to."""

    def commit(
        self, jobs: Iterable[JobView], chunks: Iterable[DigitsStored], positions: Positions
    ) -> None:
        # Materialised first, so that a repeat on a new connection writes the same rows.
        job_rows = [
            (j.job_id, j.status, j.requested_us, j.num, j.owner, j.model_dump_json()) for j in jobs
        ]
        chunk_rows = [(c.radix, c.chunk_index, c.digits) for c in chunks]
        position_rows = [(topic, part, offset) for (topic, part), offset in positions.items()]

        def write(cursor: SqlCursor) -> None:
            cursor.executemany(_UPSERT_JOB, job_rows)
            cursor.executemany(_INSERT_CHUNK, chunk_rows)
            cursor.executemany(_UPSERT_POSITION, position_rows)
            for radix in sorted({radix for radix, _, _ in chunk_rows}):
                _extend_stored_prefix(cursor, radix)

        self._backend.write(write)

    def close(self) -> None:
        """Lets go of the connections (SQLite: a later use opens new ones)."""
        self._backend.close()


def _extend_stored_prefix(cursor: SqlCursor, radix: int) -> None:
    """Chunks are whole: the stored prefix ends at the first missing chunk."""
    key = stored_digits_key(radix)
    row = cursor.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    first = (0 if row is None else int(row[0])) // DIGITS_PER_CHUNK
    end = cursor.execute(_PREFIX_END, (radix, first, first, radix, first)).fetchone()
    cursor.execute(_SET_META, (key, int(end[0]) * DIGITS_PER_CHUNK))
