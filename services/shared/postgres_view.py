"""The view in PostgreSQL, for several hosts: PostgreSQL's part of the view store.

Connections come from a psycopg_pool pool, borrowed for one statement or transaction: the
servers' threadpools start and end threads all the time, and a streamed download moves between
threads from one chunk to the next.
"""

import re
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, TypeVar

import psycopg
from psycopg_pool import ConnectionPool

from services.shared.sql_view import SqlCursor, SqlView

# Serialises schema changes and commits, as SQLite's BEGIN IMMEDIATE does: a second projector
# (a failover, a rebalance) must not compute stored_digits without the other's chunks.
_WRITE_LOCK = 0x70692D6A6F6273  # "pi-jobs"
# Connections open at most per view (readers beyond wait for one); idle ones are kept for reuse.
_MAX_CONNECTIONS = 16
_RECHECK_SECONDS = 0.5

# `make replay` builds a new generation of the view in a schema of its own, then points this
# one-row table (in the URL's own schema) at it; every PostgresView follows within half a second.
_GENERATION_TABLE = "pi_jobs_view_generation"
_GENERATION_NAME = re.compile(r"^pi_view_[0-9a-z_]{1,40}$")

_T = TypeVar("_T")
_Connection = psycopg.Connection[tuple[Any, ...]]


@lru_cache(maxsize=256)
def _with_marks(sql: str) -> str:
    """The core's `?` marks as psycopg's `%s`."""
    return sql.replace("?", "%s")


class _PostgresCursor:
    """A psycopg cursor that takes the core's SQL."""

    def __init__(self, cursor: psycopg.Cursor[tuple[Any, ...]]) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Any = (), /) -> "_PostgresCursor":
        self._cursor.execute(_with_marks(sql), params or None)
        return self

    def executemany(self, sql: str, rows: Any, /) -> None:
        self._cursor.executemany(_with_marks(sql), rows)

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._cursor.fetchone()

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._cursor.fetchall()


class PostgresConnections:
    """A pool of connections to `url`, each set to the view's current generation (a schema)
    when borrowed; `generation` fixes it (to build that one)."""

    reads_wait_on_network = True
    # COLLATE "C": ids and cursors compare bytewise, as in SQLite, whatever the database's locale.
    text_type = 'TEXT COLLATE "C"'

    def __init__(self, url: str, generation: str | None = None) -> None:
        self.url = url
        self._fixed_generation = generation
        self._generation = generation
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()
        # What each pooled connection's search_path is set to: None is the URL's own.
        self._search_path: weakref.WeakKeyDictionary[_Connection, str | None] = (
            weakref.WeakKeyDictionary()
        )
        self._base_path = "public"
        self._pool: ConnectionPool[_Connection] = ConnectionPool(
            url,
            kwargs={"autocommit": True},
            min_size=1,
            max_size=_MAX_CONNECTIONS,
            open=True,
            configure=self._configure,
            name="pi-jobs-view",
            num_workers=1,
        )
        if generation is not None:
            _check_generation_name(generation)
            self._run(lambda db: db.execute(f'CREATE SCHEMA IF NOT EXISTS "{generation}"'), False)
        else:
            self._generation = self._read_generation()

    def _configure(self, db: _Connection) -> None:
        path = db.execute("SHOW search_path").fetchone()
        self._base_path = str(path[0]) if path else "public"

    def generation(self) -> str:
        """Changes when `make replay` switches the view to a rebuilt one."""
        if self._fixed_generation is None:
            self._generation = self._read_generation()
            self._checked_at = time.monotonic()
        return self._generation or "base"

    def _current_generation(self) -> str | None:
        if self._fixed_generation is not None:
            return self._fixed_generation
        if time.monotonic() - self._checked_at > _RECHECK_SECONDS:
            self._generation = self._read_generation()
            self._checked_at = time.monotonic()
        return self._generation

    def _read_generation(self) -> str | None:
        def read(db: _Connection) -> str | None:
            found = db.execute(f"SELECT to_regclass('{_GENERATION_TABLE}') IS NOT NULL").fetchone()
            if not (found and found[0]):
                return None
            row = db.execute(f"SELECT name FROM {_GENERATION_TABLE}").fetchone()
            return None if row is None else str(row[0])

        return self._run(read, follow=False)

    def _run(self, work: Callable[[_Connection], _T], follow: bool = True) -> _T:
        """Run `work` on a connection at the current generation (`follow=False`: at the URL's
        own schema); once more on a new connection if its connection turned out to be dead.

        Idle connections die when the server restarts or fails over. Every use of the view is
        safe to repeat: reads, and commits (upserts of the same rows).
        """
        for attempt in (1, 2):
            wanted = self._current_generation() if follow else None
            db: _Connection | None = None
            try:
                with self._pool.connection() as db:
                    if db not in self._search_path or self._search_path[db] != wanted:
                        target = f'"{wanted}"' if wanted else self._base_path
                        db.execute(f"SET search_path TO {target}")
                        self._search_path[db] = wanted
                    return work(db)
            except psycopg.OperationalError:
                if attempt == 2 or db is None or not db.closed:
                    raise
            self._pool.check()  # the other idle connections are likely dead too
        raise AssertionError("unreachable")

    def read(self, work: Callable[[SqlCursor], _T]) -> _T:
        def on(db: _Connection) -> _T:
            with db.cursor() as cursor:
                return work(_PostgresCursor(cursor))

        return self._run(on)

    def write(self, work: Callable[[SqlCursor], _T]) -> _T:
        def on(db: _Connection) -> _T:
            with db.transaction(), db.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                return work(_PostgresCursor(cursor))

        return self._run(on)

    def table_exists(self, cursor: SqlCursor, name: str) -> bool:
        found = cursor.execute("SELECT to_regclass(?) IS NOT NULL", (name,)).fetchone()
        return bool(found and found[0])

    def close(self) -> None:
        self._pool.close()


class PostgresView(SqlView):
    """The view in PostgreSQL at `url`: one writer (the projector), any number of readers.

    `generation`: build that generation (a schema) rather than follow the current one.
    """

    def __init__(self, url: str, writer: bool = False, generation: str | None = None) -> None:
        self._connections = PostgresConnections(url, generation)
        super().__init__(self._connections, writer)

    def new_generation(self) -> "PostgresGeneration":
        name = "pi_view_" + datetime.now(UTC).strftime("%Y%m%dt%H%M%S%f")
        return PostgresGeneration(
            self._connections.url, PostgresView(self._connections.url, True, generation=name)
        )


@dataclass(frozen=True)
class PostgresGeneration:
    """A view built in a schema of its own, switched to by the one-row generation table."""

    url: str
    view: PostgresView

    @property
    def name(self) -> str:
        return self.view.generation()

    def switch_to(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as db, db.transaction():
            db.execute(f"CREATE TABLE IF NOT EXISTS {_GENERATION_TABLE} (name TEXT NOT NULL)")
            db.execute(f"SELECT name FROM {_GENERATION_TABLE} FOR UPDATE")
            db.execute(f"DELETE FROM {_GENERATION_TABLE}")
            db.execute(f"INSERT INTO {_GENERATION_TABLE} (name) VALUES (%s)", (self.name,))

    def retire_replaced(self) -> None:
        """Drops every generation but this one."""
        with psycopg.connect(self.url, autocommit=True) as db:
            names = db.execute(
                "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'pi\\_view\\_%'"
            ).fetchall()
            for (name,) in names:
                if name != self.name and _GENERATION_NAME.fullmatch(name):
                    db.execute(f'DROP SCHEMA "{name}" CASCADE')


def _check_generation_name(name: str) -> None:
    if not _GENERATION_NAME.fullmatch(name):
        raise ValueError(f"{name!r} is not a view generation name (pi_view_...)")
