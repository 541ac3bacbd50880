"""The view store's contract, run against every backend: SQLite and PostgreSQL.

PostgreSQL is Debian's, started once per session by LocalPostgres; each test gets a schema of
its own.
"""

import random
import sqlite3
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import psycopg
import pytest

from deploy.postgres.local_postgres import LocalPostgres
from services.projector.handler import LogRecord, decode_batch, project_batch
from services.shared.events import (
    DIGITS_PER_CHUNK,
    DigitsStored,
    JobCompleted,
    JobEvent,
    JobRequested,
    JobStarted,
    encode,
)
from services.shared.sql_view import SqlView
from services.shared.sqlite_view import SqliteView
from services.shared.view import JobView, ViewStore
from services.shared.view_stores import open_view
from tests.postgres_schemas import postgres_schema_url
from tests.support import wait_until

C = DIGITS_PER_CHUNK
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def chunk(index: int, digit: str = "7") -> DigitsStored:
    return DigitsStored(chunk_index=index, digits=digit * C)


def hex_chunk(index: int, digit: str = "c") -> DigitsStored:
    return DigitsStored(radix=16, chunk_index=index, digits=digit * C)


def job(job_id: str, seconds: int, status: str = "queued") -> JobView:
    return JobView.model_validate(
        {
            "job_id": job_id,
            "num": 3,
            "status": status,
            "requested_at": T0 + timedelta(seconds=seconds),
        }
    )


def cursor(view: JobView) -> tuple[int, str]:
    """What the API's listing cursor holds."""
    return int(view.requested_at.timestamp() * 1_000_000), view.job_id


@dataclass
class Store:
    """Where one test's view lives; opens views there and closes them after the test."""

    backend: str
    url: str
    opened: list[ViewStore] = field(default_factory=list)

    def open(self, writer: bool = False) -> SqlView:
        view = open_view(self.url, writer=writer)
        self.opened.append(view)
        return view

    def close_views(self) -> None:
        for view in self.opened:
            view.close()

    def execute(self, sql: str) -> None:
        """Run SQL on a connection of its own, behind the views' backs."""
        if self.backend == "sqlite":
            with sqlite3.connect(self.url.removeprefix("sqlite://")) as db:
                db.execute(sql)
            db.close()
        else:
            with psycopg.connect(self.url, autocommit=True) as pg:
                pg.execute(sql.encode())


def _postgres_store(server: LocalPostgres) -> Store:
    return Store("postgresql", postgres_schema_url(server))


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "sqlite":
        location = Store("sqlite", f"sqlite://{tmp_path / 'view.sqlite3'}")
    else:  # the server starts with the first test that needs it
        location = _postgres_store(request.getfixturevalue("postgres"))
    yield location
    location.close_views()


@pytest.fixture
def postgres_store(postgres: LocalPostgres) -> Iterator[Store]:
    location = _postgres_store(postgres)
    yield location
    location.close_views()


def test_jobs_and_positions_are_committed_together(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([job("a", 0)], [], {("events", 2): 41})
    reopened = store.open()
    assert reopened.get_job("a") == job("a", 0)
    assert reopened.position("events", 2) == 41 and reopened.position("events", 0) == 0
    assert reopened.get_job("missing") is None


def test_positions_are_replaced_and_listed(store: Store) -> None:
    view = store.open(writer=True)
    assert view.positions() == {}
    view.commit([], [], {("events", 0): 3, ("digits", 0): 1})
    view.commit([], [], {("events", 0): 9})
    assert view.positions() == {("events", 0): 9, ("digits", 0): 1}
    assert store.open().position("events", 0) == 9


def test_a_changed_job_replaces_the_stored_one(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([job("a", 0), job("b", 1)], [], {})
    view.commit([job("a", 0, "complete")], [], {})
    assert view.load_jobs(["a", "b", "a", "missing"]) == {
        "a": job("a", 0, "complete"),
        "b": job("b", 1),
    }
    assert view.load_jobs([]) == {}


def test_a_commit_failing_in_the_database_writes_nothing(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([job("a", 0)], [chunk(0)], {("events", 0): 1})
    with pytest.raises((OverflowError, psycopg.DataError)):  # beyond a 64-bit offset
        view.commit([job("a", 0, "complete"), job("b", 1)], [chunk(1)], {("events", 0): 2**63})
    assert view.get_job("a") == job("a", 0) and view.get_job("b") is None
    assert view.stored_digits() == C and view.positions() == {("events", 0): 1}
    view.commit([job("b", 1)], [chunk(1)], {("events", 0): 2})  # the store is still usable
    assert view.get_job("b") == job("b", 1) and view.stored_digits() == 2 * C


def test_a_commit_whose_input_fails_writes_nothing(store: Store) -> None:
    view = store.open(writer=True)

    def chunks() -> Iterator[DigitsStored]:
        yield chunk(0)
        raise RuntimeError("the batch broke")

    with pytest.raises(RuntimeError, match="the batch broke"):
        view.commit([job("a", 0)], chunks(), {("events", 0): 1})
    assert view.get_job("a") is None and view.stored_digits() == 0 and view.positions() == {}


def test_stored_digits_count_only_the_contiguous_prefix(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([], [chunk(0, "1")], {})
    assert view.stored_digits() == C
    view.commit([], [chunk(2, "3"), chunk(3, "4")], {})  # a gap: chunk 1 has not arrived
    assert view.stored_digits() == C
    view.commit([], [chunk(1, "2"), chunk(0, "9")], {})
    assert view.stored_digits() == 4 * C
    assert list(view.iter_digits(C + 3)) == ["1" * C, "222"]  # the first copy of chunk 0 stays
    assert store.open().stored_digits() == 4 * C


def test_digits_are_read_chunk_by_chunk_up_to_the_count(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([], [chunk(0, "1"), chunk(1, "2")], {})
    assert list(view.iter_digits(0)) == []
    assert list(view.iter_digits(5)) == ["11111"]
    assert list(view.iter_digits(C)) == ["1" * C]
    assert list(view.iter_digits(2 * C)) == ["1" * C, "2" * C]
    pieces = view.iter_digits(2 * C + 1)
    assert next(pieces) == "1" * C and next(pieces) == "2" * C
    with pytest.raises(LookupError, match="chunk 2"):
        next(pieces)


def test_each_radix_has_its_own_chunks_and_stored_prefix(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([], [chunk(0, "1"), hex_chunk(0, "a"), hex_chunk(2, "f")], {})
    assert (view.stored_digits(), view.stored_digits(16)) == (C, C)
    view.commit([], [hex_chunk(1, "b"), chunk(0, "9")], {})
    assert (view.stored_digits(10), view.stored_digits(radix=16)) == (C, 3 * C)
    assert list(view.iter_digits(C + 2, radix=16)) == ["a" * C, "bb"]
    assert list(view.iter_digits(3)) == ["111"]  # decimals untouched by hex chunk 0
    with pytest.raises(LookupError, match="chunk 1"):
        list(view.iter_digits(C + 1))
    assert store.open().read_digits(C - 1, 2, radix=16) == "ab"


def random_digits(seed: int, radix: int, count: int) -> str:
    alphabet = "0123456789abcdef"[:radix]
    return "".join(random.Random(seed).choices(alphabet, k=count))


@pytest.mark.parametrize("radix", [10, 16])
def test_any_stored_range_is_read_across_chunks_up_to_the_last_digit(
    store: Store, radix: Literal[10, 16]
) -> None:
    digits = random_digits(radix, radix, 3 * C)  # what the chunks hold, end to end
    chunks = [
        DigitsStored(radix=radix, chunk_index=i, digits=digits[i * C : (i + 1) * C])
        for i in range(3)
    ]
    view = store.open(writer=True)
    view.commit([], chunks, {})
    ranges = [(0, 1), (0, 10), (5, 0), (C - 3, 6), (C - 1, C + 2), (C, C), (0, 3 * C),
              (3 * C - 1, 1), (2 * C + 17, C - 17), (1234, 2 * C)]  # fmt: skip
    for start, count in ranges:
        assert view.read_digits(start, count, radix) == digits[start : start + count], (
            start,
            count,
        )
    with pytest.raises(LookupError):
        view.read_digits(3 * C - 1, 2, radix)  # one past the last stored digit
    with pytest.raises(LookupError):
        view.read_digits(3 * C, 1, radix)


def test_digits_outside_the_stored_chunks_or_asked_badly_are_refused(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([], [chunk(0, "1"), chunk(2, "3")], {})  # chunk 1 missing
    assert view.read_digits(2 * C, 3) == "333"  # whole chunks are readable, even past a gap
    with pytest.raises(LookupError, match=r"radix-10 digits \[99999, 200001\)"):
        view.read_digits(C - 1, C + 2)
    with pytest.raises(LookupError):
        view.read_digits(0, 1, radix=16)
    for start, count, radix in ((-1, 1, 10), (0, -1, 10), (0, 1, 8)):
        with pytest.raises(ValueError):
            view.read_digits(start, count, radix)


def test_jobs_are_listed_newest_first_by_page_and_status(store: Store) -> None:
    view = store.open(writer=True)
    jobs = [job(f"j{i}", i, "complete" if i % 2 else "queued") for i in range(7)]
    view.commit(jobs, [], {})
    first = view.list_jobs(None, 3, None)
    assert [j.job_id for j in first] == ["j6", "j5", "j4"]
    second = view.list_jobs(None, 3, cursor(first[-1]))
    assert [j.job_id for j in second] == ["j3", "j2", "j1"]
    assert [j.job_id for j in view.list_jobs(None, 3, cursor(second[-1]))] == ["j0"]
    assert [j.job_id for j in view.list_jobs("complete", 10, None)] == ["j5", "j3", "j1"]
    assert [j.job_id for j in view.list_jobs("complete", 10, cursor(jobs[5]))] == ["j3", "j1"]
    assert view.list_jobs("failed", 10, None) == []


def test_jobs_are_listed_by_owner_and_unfinished_ones_are_found(store: Store) -> None:
    view = store.open(writer=True)
    statuses = ["queued", "in_progress", "complete", "cancelled", "queued", "failed"]
    jobs = [
        job(f"j{i}", i, status).model_copy(update={"owner": "alice" if i % 2 else "bob"})
        for i, status in enumerate(statuses)
    ]
    view.commit(jobs, [], {})
    assert [j.job_id for j in view.list_jobs(None, 10, None, "alice")] == ["j5", "j3", "j1"]
    assert [j.job_id for j in view.list_jobs("queued", 10, None, "bob")] == ["j4", "j0"]
    assert [j.job_id for j in view.list_jobs(None, 1, cursor(jobs[4]), "bob")] == ["j2"]
    assert view.list_jobs(None, 10, None, "carol") == []
    unfinished = {j.job_id: j.owner for j in view.unfinished_jobs()}
    assert unfinished == {"j0": "bob", "j1": "alice", "j4": "bob"}
    view.commit([jobs[4].model_copy(update={"num": 100})], [], {})
    assert [j.job_id for j in view.unfinished_jobs(larger_than=3)] == ["j4"]


def test_jobs_requested_at_the_same_moment_are_ordered_by_id(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([job(job_id, 0) for job_id in ("b", "B", "a", "ab")], [], {})
    page = view.list_jobs(None, 2, None)
    assert [j.job_id for j in page] == ["b", "ab"]  # bytewise: "B" < "a" < "ab" < "b"
    assert [j.job_id for j in view.list_jobs(None, 9, cursor(page[-1]))] == ["a", "B"]


def test_a_reader_of_an_absent_view_sees_an_empty_one(store: Store) -> None:
    view = store.open()
    assert view.get_job("a") is None and view.list_jobs(None, 5, None) == []
    assert view.stored_digits() == 0 and view.position("events", 0) == 0


def test_an_outdated_view_is_dropped_by_the_writer_for_a_rebuild(store: Store) -> None:
    view = store.open(writer=True)
    view.commit([job("a", 0)], [chunk(0)], {("events", 0): 5})
    store.execute("UPDATE meta SET value = 1 WHERE key = 'schema_version'")
    store.open()  # a reader leaves it alone
    assert store.open().get_job("a") is not None
    rebuilt = store.open(writer=True)
    assert rebuilt.get_job("a") is None and rebuilt.positions() == {}
    assert rebuilt.stored_digits() == 0 and list(rebuilt.iter_digits(0)) == []
    rebuilt.commit([job("b", 1)], [], {})
    assert store.open(writer=True).get_job("b") == job("b", 1)  # current: kept


def test_a_view_from_before_schema_versions_is_rebuilt(store: Store) -> None:
    # What the first release created: no version anywhere.
    store.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, requested_at TEXT, body TEXT)")
    store.open()  # a reader leaves it for the projector
    view = store.open(writer=True)
    assert view.list_jobs(None, 10, None) == [] and view.positions() == {}
    view.commit([job("a", 0)], [chunk(0)], {("events", 0): 1})
    assert store.open().get_job("a") == job("a", 0) and view.stored_digits() == C


def test_readers_on_several_threads_see_whole_commits(store: Store) -> None:
    writer = store.open(writer=True)
    reader = store.open()
    commits = 40
    done = threading.Event()

    def read() -> int:
        checks = 0
        while not done.is_set() or checks == 0:
            # A position is committed with its job: whoever sees one sees the other.
            seen = reader.position("events", 0)
            stored = reader.stored_digits()
            if seen:
                assert reader.get_job(f"j{seen - 1}") is not None, seen
                assert len(reader.list_jobs(None, 100, None)) >= seen
                assert stored >= min(seen, 3) * C
            if stored:
                assert "".join(reader.iter_digits(stored)) == "7" * stored
            checks += 1
        return checks

    with ThreadPoolExecutor(max_workers=4) as pool:
        readers = [pool.submit(read) for _ in range(4)]
        try:
            for i in range(commits):
                chunks = [chunk(i)] if i < 3 else []
                writer.commit([job(f"j{i}", i)], chunks, {("events", 0): i + 1})
        finally:
            done.set()
        assert all(future.result() > 0 for future in readers)
    assert reader.position("events", 0) == commits
    assert [j.job_id for j in reader.list_jobs(None, 2, None)] == ["j39", "j38"]


def test_the_projector_folds_a_batch_into_the_view(store: Store) -> None:
    view = store.open(writer=True)
    events: list[JobEvent] = [
        JobRequested(job_id="a", num=5, occurred_at=T0),
        JobStarted(job_id="a", worker="w1", occurred_at=T0 + timedelta(seconds=1)),
        JobCompleted(
            job_id="a",
            num=5,
            digits_source="computed",
            compute_seconds=0.5,
            occurred_at=T0 + timedelta(seconds=2),
        ),
        JobRequested(job_id="b", num=7, occurred_at=T0 + timedelta(seconds=3)),
    ]
    records = [LogRecord("events", 0, offset, None, encode(e)) for offset, e in enumerate(events)]
    records += [
        LogRecord("events", 1, 0, None, b"not an event"),
        LogRecord("digits", 0, 0, None, encode(chunk(0, "1"))),
        LogRecord("digits", 0, 1, None, encode(hex_chunk(0, "d"))),
        # As the first release wrote chunks: version 1, no radix (decimals).
        LogRecord(
            "digits",
            0,
            2,
            None,
            b'{"type":"DigitsStored","version":1,"chunk_index":1,"digits":"' + b"2" * C + b'"}',
        ),
    ]
    for _ in range(2):  # a replay after a crash changes nothing
        decoded = decode_batch(records, digits_topic="digits")
        assert [record.offset for record, _ in decoded.unreadable] == [0]
        project_batch(view, decoded)
        assert view.positions() == {("events", 0): 4, ("events", 1): 1, ("digits", 0): 3}
        a = view.get_job("a")
        assert a is not None and a.status == "complete" and a.worker == "w1"
        assert [j.job_id for j in view.list_jobs("queued", 5, None)] == ["b"]
        assert view.stored_digits() == 2 * C and view.read_digits(C - 1, 2) == "12"
        assert view.stored_digits(16) == C and view.read_digits(0, 2, radix=16) == "dd"


# PostgreSQL only (SQLite's query plan is checked in tests/unit/test_sqlite_view.py)


def test_postgres_listing_uses_an_index_not_a_scan(postgres_store: Store) -> None:
    store = postgres_store
    statuses = ("queued", "in_progress", "complete", "failed")
    store.open(writer=True).commit(
        [job(f"j{i:05}", i, statuses[i % 4]) for i in range(4000)], [], {}
    )
    store.execute("ANALYZE jobs")
    with psycopg.connect(store.url) as pg:
        for where in ("", "WHERE status = 'queued'", "WHERE (requested_us, job_id) < (9, 'x')",
                      "WHERE status = 'queued' AND (requested_us, job_id) < (9, 'x')"):  # fmt: skip
            plan = "\n".join(
                str(row[0])
                for row in pg.execute(
                    f"EXPLAIN SELECT body FROM jobs {where} "
                    "ORDER BY requested_us DESC, job_id DESC LIMIT 20"
                )
            )
            assert "Index Scan using jobs_" in plan and "Sort" not in plan, plan


def test_postgres_views_reconnect_after_a_server_restart(
    postgres_store: Store, postgres: LocalPostgres
) -> None:
    store = postgres_store
    writer, reader = store.open(writer=True), store.open()
    writer.commit([job("a", 0)], [], {("events", 0): 1})
    assert reader.get_job("a") is not None  # both now hold an idle connection
    postgres.stop()
    postgres.start()
    postgres.wait_ready()
    assert reader.get_job("a") == job("a", 0)
    writer.commit([job("b", 1)], [], {("events", 0): 2})
    assert reader.position("events", 0) == 2


def test_view_urls_choose_the_backend(tmp_path: Path) -> None:
    path = tmp_path / "v.sqlite3"
    assert isinstance(open_view(f"sqlite://{path}", writer=True), SqliteView)
    assert isinstance(open_view(str(path)), SqliteView)
    for url in ("sqlite://relative/v.sqlite3", "sqlite:relative", "sqlite:///x?mode=ro"):
        with pytest.raises(ValueError, match="absolute path"):
            open_view(url)
    with pytest.raises(ValueError, match="'mysql'") as raised:
        open_view("mysql://root:secret@db/view")
    assert "secret" not in str(raised.value)
    with pytest.raises(ValueError, match="empty"):
        open_view("")


def test_readers_and_the_writer_follow_a_switch_to_a_new_generation(store: Store) -> None:
    live = store.open(writer=True)
    live.commit([job("old", 1)], [], {("events", 0): 1})
    reader = store.open()
    before = reader.generation()
    new = live.new_generation()
    store.opened.append(new.view)
    assert new.view.get_job("old") is None and new.name != before  # empty, beside the live one
    new.view.commit([job("old", 1), job("new", 2)], [chunk(0)], {("events", 0): 2})
    assert reader.get_job("new") is None  # not switched yet: nothing half-built is seen
    new.switch_to()
    wait_until(lambda: reader.get_job("new") is not None, 5, "the reader to follow the switch")
    assert reader.generation() == new.name == live.generation() and reader.stored_digits() == C
    assert live.positions() == {("events", 0): 2}  # the projector carries on in the new one
    new.retire_replaced()
    assert reader.get_job("old") == job("old", 1) and store.open().get_job("new") is not None
    live.commit([job("later", 3)], [], {("events", 0): 3})
    assert reader.get_job("later") == job("later", 3)
