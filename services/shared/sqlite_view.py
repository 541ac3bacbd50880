"""The view in one SQLite file (WAL), for one host: SQLite's part of the view store."""

import contextlib
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from services.shared.sql_view import SqlCursor, SqlView

# Idle connections kept for reuse; more are opened while more threads read at once.
_MAX_IDLE_CONNECTIONS = 8
_RECHECK_SECONDS = 0.5

_T = TypeVar("_T")


class SqliteFile:
    """Connections to the file at `path`, which may be a symbolic link: `make replay` builds a
    new file beside it, then swaps the link in one step.

    Connections come from a pool of idle ones, borrowed for one statement or transaction by any
    thread (a read takes one from a list, not a lock-and-wait checkout: it is the hot path). The
    link is followed again every half second (by a thread of its own while nothing reads), and a
    connection to a file the link has left is closed as soon as it is idle: no process keeps a
    replaced file open, so its disk space comes back once the replay removes it.
    """

    reads_wait_on_network = False
    text_type = "TEXT"  # SQLite compares text bytewise (BINARY) unless told otherwise

    def __init__(self, path: Path, durable: bool) -> None:
        self.path = path
        self._synchronous = "NORMAL" if durable else "OFF"
        self._lock = threading.Lock()
        self._idle: list[sqlite3.Connection] = []  # all to self._file
        self._file = path.resolve()
        self._checked_at = time.monotonic()
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connection() as db:
            db.execute("PRAGMA journal_mode=WAL")
        self._stop_following = _follow_link(self)

    def current_file(self) -> Path:
        """The file the view is in now (follows the link afresh); idle connections to the one
        it was in before are closed."""
        file = self.path.resolve()
        with self._lock:
            self._checked_at = time.monotonic()
            moved = file != self._file
            self._file = file
            left, self._idle = (self._idle, []) if moved else ([], self._idle)
        for db in left:
            db.close()
        return file

    def _connect(self, file: Path) -> sqlite3.Connection:
        # Borrowed by one thread at a time, though not always the same one.
        db = sqlite3.connect(file, timeout=30, isolation_level=None, check_same_thread=False)
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        return db

    def _borrow(self) -> tuple[sqlite3.Connection, Path]:
        """A connection to the current file, and that file: give it back when done."""
        if time.monotonic() - self._checked_at > _RECHECK_SECONDS:
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

    def read(self, work: Callable[[SqlCursor], _T]) -> _T:
        db, file = self._borrow()  # not _connection(): this is the hot path
        try:
            return work(db.cursor())
        finally:
            self._give_back(db, file)

    def write(self, work: Callable[[SqlCursor], _T]) -> _T:
        # Commits are not synced to disk one by one (WAL with synchronous=NORMAL): a crash of
        # the host may take back the last of them, but never half of one, and the view's read
        # positions go back with them, so the projector reads those events again from the log.
        with self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                done = work(db.cursor())
                db.execute("COMMIT")
                return done
            except BaseException:
                db.execute("ROLLBACK")
                raise

    def table_exists(self, cursor: SqlCursor, name: str) -> bool:
        found = cursor.execute("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)).fetchone()
        return found is not None

    def generation(self) -> str:
        return str(self.current_file())

    def flush_to_disk(self) -> None:
        """Everything committed so far, in the database file and synced."""
        with self._connection() as db:
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        with self._file.open("rb+") as file:
            os.fsync(file.fileno())

    def close(self) -> None:
        """Closes the idle connections (a later use opens new ones) and stops following."""
        self._stop_following.set()
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()


class SqliteView(SqlView):
    """The view in the SQLite file at `path`: one writer (the projector), any number of readers.

    `durable=False` does not even sync at checkpoints: for a rebuild, which is flushed to disk
    before it is switched to.
    """

    def __init__(self, path: Path, writer: bool = False, durable: bool = True) -> None:
        self._file = SqliteFile(path, durable)
        super().__init__(self._file, writer)

    def current_file(self) -> Path:
        return self._file.current_file()

    def flush_to_disk(self) -> None:
        self._file.flush_to_disk()

    def new_generation(self) -> "SqliteGeneration":
        link = self._file.path
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
        file = link.with_name(f"{link.stem}-{stamp}.sqlite3")
        return SqliteGeneration(link, SqliteView(file, writer=True, durable=False))


@dataclass(frozen=True)
class SqliteGeneration:
    """A view file built beside the link, switched to by swapping the link."""

    link: Path
    view: SqliteView

    @property
    def name(self) -> str:
        return str(self.view.current_file())

    def switch_to(self) -> None:
        self.view.flush_to_disk()
        staged = self.link.with_name(self.link.name + ".switching")
        staged.unlink(missing_ok=True)
        staged.symlink_to(self.view.current_file().name)
        os.replace(staged, self.link)  # rename is atomic

    def retire_replaced(self) -> None:
        """Every view file but this one, with its -wal and -shm: the generations before it, and
        what a view at the link's own path (before the first replay) left. Readers close what
        they had open of these files once they follow the link."""
        keep = self.view.current_file().name
        link = self.link
        for old in [
            *link.parent.glob(f"{link.stem}-*.sqlite3*"),
            *link.parent.glob(f"{link.name}-*"),
        ]:
            if old.name.removesuffix("-wal").removesuffix("-shm") != keep:
                old.unlink(missing_ok=True)


def _follow_link(connections: SqliteFile) -> threading.Event:
    """Follows the link every half second while `connections` live, so that a process with
    nothing to read also lets go of a replaced file. Set the event returned to stop."""
    stop = threading.Event()
    alive = weakref.ref(connections)

    def follow() -> None:
        while not stop.wait(_RECHECK_SECONDS):
            current = alive()
            if current is None:
                return
            with contextlib.suppress(OSError):
                current.current_file()
            del current

    threading.Thread(target=follow, name="view-link", daemon=True).start()
    return stop
