"""`make replay` rebuilds the view from the log while the system keeps serving."""

import os
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import psycopg

from deploy.local_stack import LocalStack
from deploy.postgres.local_postgres import LocalPostgres
from tests.conftest import postgres_schema_url
from tests.e2e.conftest import start_stack, stop_stack
from tests.e2e.helpers import download_text, submit, wait_complete
from tests.support import reference_pi_text


def test_replay_rebuilds_the_view_while_readers_keep_getting_answers(
    client: httpx.Client, stack: LocalStack
) -> None:
    replay_while_reading(client, stack)
    view_link = stack.data_dir / "view.sqlite3"
    assert view_link.is_symlink() and view_link.resolve().name.startswith("view-")


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
        done = subprocess.run(
            [sys.executable, "-m", "services.projector.replay"],
            env={**os.environ, **stack.env()},
            capture_output=True,
            text=True,
            timeout=300,
        )
    finally:
        stop.set()
        reading.join()
    assert done.returncode == 0, done.stderr
    assert "replayed" in done.stdout

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
