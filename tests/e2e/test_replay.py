"""`make replay` rebuilds the view from the log while the system keeps serving."""

import os
import subprocess
import sys
import threading
from functools import partial
from pathlib import Path

import httpx
import psycopg

from deploy.local_stack import LocalStack
from deploy.postgres.local_postgres import LocalPostgres
from tests.e2e.helpers import download_text, submit, wait_complete
from tests.postgres_schemas import postgres_schema_url
from tests.stacks import start_stack, stop_stack
from tests.support import reference_pi_text, wait_until


def test_replay_rebuilds_the_view_while_readers_keep_getting_answers(
    client: httpx.Client, stack: LocalStack
) -> None:
    replay_while_reading(client, stack)
    view_link = stack.data_dir / "view.sqlite3"
    assert view_link.is_symlink() and view_link.resolve().name.startswith("view-")


def test_replays_leave_no_old_view_on_disk_or_held_open(
    client: httpx.Client, stack: LocalStack
) -> None:
    """The replaced view file, its -wal and -shm are removed, and no process keeps them open
    (not even a thread that read them once and has been idle since), replay after replay."""
    job_id = submit(client, 4321)
    wait_complete(client, job_id)
    link = stack.data_dir / "view.sqlite3"
    for _ in range(2):
        # Reads from the API's event loop and thread pool, and the downloader's builder thread.
        assert client.get("/metrics").status_code == 200
        assert download_text(client, job_id) == reference_pi_text(4321)
        run_replay(stack)
        current = link.resolve().name
        on_disk = {path.name for path in stack.data_dir.glob("view*")}
        assert on_disk <= {link.name, current, f"{current}-wal", f"{current}-shm"}, on_disk
        wait_until(
            partial(holds_only, stack, current), 30, "the stack to let go of the replaced view"
        )
    assert client.get(f"/pi_job/{job_id}").json()["status"] == "complete"


def holds_only(stack: LocalStack, current: str) -> bool:
    return all(name.startswith(current) for name in view_files_open(stack))


def view_files_open(stack: LocalStack) -> set[str]:
    """The view files that the stack's processes (the API's children too) hold open; a deleted
    one reads "NAME (deleted)"."""
    found = set()
    for pid in descendants({process.pid for process in stack.processes.values()}):
        for fd in Path(f"/proc/{pid}/fd").glob("*"):
            try:
                target = os.readlink(fd)
            except OSError:
                continue  # closed, or the process ended
            if target.startswith(str(stack.data_dir / "view")):
                found.add(Path(target).name)
    return found


def descendants(roots: set[int]) -> set[int]:
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    found = set(roots)
    while more := {pid for pid, parent in parents.items() if parent in found} - found:
        found |= more
    return found


def run_replay(stack: LocalStack) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "services.projector.replay"],
        env={**os.environ, **stack.env()},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "replayed" in done.stdout


def test_replay_of_a_postgresql_view(
    kafka_bootstrap: str, postgres: LocalPostgres, tmp_path: Path
) -> None:
    url = postgres_schema_url(postgres)
    stack = start_stack(kafka_bootstrap, tmp_path, extra_env={"PI_JOBS_VIEW_URL": url})
    try:
        with httpx.Client(base_url=stack.url, timeout=60) as client:
            replay_while_reading(client, stack)
    finally:
        stop_stack(stack, show_logs=True)
    with psycopg.connect(url) as db:
        row = db.execute("SELECT name FROM pi_jobs_view_generation").fetchone()
    assert row is not None and row[0].startswith("pi_view_")


def replay_while_reading(client: httpx.Client, stack: LocalStack) -> None:
    jobs = {submit(client, num): num for num in (7, 1234, 250_000)}
    for job_id in jobs:
        wait_complete(client, job_id)
    cancelled = submit(client, 30_000_000)
    assert client.delete(f"/pi_job/{cancelled}").status_code == 200
    before = {job_id: client.get(f"/pi_job/{job_id}").json() for job_id in [*jobs, cancelled]}

    # Readers poll all along: never a 404 or 5xx, never a status going back.
    answers: list[tuple[str, int, str]] = []
    stop = threading.Event()

    def keep_reading() -> None:
        with httpx.Client(base_url=stack.url, timeout=30) as reader:
            while not stop.is_set():
                for job_id in before:
                    response = reader.get(f"/pi_job/{job_id}")
                    answers.append((job_id, response.status_code, response.json()["status"]))

    reading = threading.Thread(target=keep_reading)
    reading.start()
    try:
        run_replay(stack)
    finally:
        stop.set()
        reading.join()

    assert answers and {code for _, code, _ in answers} == {200}
    assert all(status == before[job_id]["status"] for job_id, _, status in answers)
    for job_id, num in jobs.items():
        assert client.get(f"/pi_job/{job_id}").json() == before[job_id]
        assert download_text(client, job_id) == reference_pi_text(num)
    assert client.get(f"/pi_job/{cancelled}").json() == before[cancelled]

    # The projector goes on in the rebuilt view.
    after = submit(client, 99)
    wait_complete(client, after)
    assert download_text(client, after) == reference_pi_text(99)
