"""Jobs of every size at once: fairness, progress, cancellation, live status, listing,
idempotent submission and several calculators, over HTTP against real processes."""

import hashlib
import json

import httpx
import pytest

from deploy.kafka.local_broker import free_port
from deploy.local_stack import LocalStack
from tests.e2e.helpers import (
    download_text,
    engine_processes,
    status,
    submit,
    wait_complete,
    wait_status,
    worker_of,
)
from tests.reference_digits import SHA256_10M
from tests.support import reference_pi_text, wait_until

BIG = 20_000_000


def test_small_jobs_complete_while_a_big_one_computes_and_progress_shows(
    client: httpx.Client,
) -> None:
    big = submit(client, BIG)
    wait_status(client, big, "in_progress")
    small_jobs = [submit(client, 1000) for _ in range(5)]
    for job_id in small_jobs:
        wait_complete(client, job_id, timeout=120)
        assert download_text(client, job_id) == reference_pi_text(1000)
    assert status(client, big)["status"] == "in_progress", "the small jobs did not wait"

    seen_progress: set[float] = set()

    def big_done() -> bool:
        body = status(client, big)
        progress = body["progress"]
        if body["status"] == "in_progress" and isinstance(progress, float) and progress > 0:
            seen_progress.add(progress)
            assert isinstance(body["eta_seconds"], float)
        return body["status"] == "complete"

    wait_until(big_done, 300, "big job complete")
    assert any(0 < p < 1 for p in seen_progress), seen_progress
    assert status(client, big)["progress"] == 1.0


def test_cancelling_a_running_job_stops_its_computation(
    client: httpx.Client, stack: LocalStack
) -> None:
    job_id = submit(client, 30_000_000)
    wait_status(client, job_id, "in_progress")
    wait_until(lambda: engine_processes(stack), 60, "the engine to start")
    response = client.delete(f"/pi_job/{job_id}")
    assert response.status_code == 200, response.text
    assert response.json() == {"success": True, "job_id": job_id, "status": "cancelled"}
    assert status(client, job_id)["status"] == "cancelled"
    wait_until(lambda: not engine_processes(stack), 10, "the engine process to be gone")
    assert client.get(f"/download_pi_job/{job_id}").status_code == 404
    again = client.delete(f"/pi_job/{job_id}")
    assert again.status_code == 409 and again.json()["success"] is False


def test_status_changes_stream_as_server_sent_events(client: httpx.Client) -> None:
    job_id = submit(client, 2000)
    statuses = []
    with client.stream("GET", f"/pi_job/{job_id}/events") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("data: "):
                statuses.append(json.loads(line.removeprefix("data: "))["status"])
    assert statuses[-1] == "complete" and len(statuses) == len(set(statuses))
    assert client.get("/pi_job/ffffffffffffffffffffffffffffffff/events").status_code == 404


def test_an_idempotency_key_returns_the_same_job_on_every_api_replica(
    client: httpx.Client, stack: LocalStack
) -> None:
    port = free_port()
    stack.start_replica("api", "api-2", PI_JOBS_PORT=str(port))
    headers = {"Idempotency-Key": "order-4711"}
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as replica:
            wait_until(lambda: _ready(replica), 60, "second api replica")
            first = client.post("/pi_job", data={"num": "42"}, headers=headers).json()
            again = replica.post("/pi_job", data={"num": "42"}, headers=headers).json()
            assert first["job_id"] == again["job_id"]
            conflict = replica.post("/pi_job", data={"num": "43"}, headers=headers)
            assert conflict.status_code == 409 and conflict.json()["success"] is False
    finally:
        stack.stop("api-2")
    listed = client.get("/pi_jobs", params={"limit": 100}).json()["jobs"]
    assert [j["job_id"] for j in listed].count(first["job_id"]) == 1


def _ready(client: httpx.Client) -> bool:
    try:
        return client.get("/readyz").status_code == 200
    except httpx.HTTPError:
        return False


@pytest.mark.timeout(600)
def test_calculators_share_the_work_and_take_over_from_a_stopped_one(
    client: httpx.Client, stack: LocalStack
) -> None:
    stack.start_replica("calculator", "calculator-2")
    workers: set[str] = set()

    def both_calculators_took_jobs() -> bool:
        job_id = submit(client, 1000)
        wait_complete(client, job_id)
        workers.add(worker_of(client, job_id))
        return len(workers) == 2

    # Until the group has rebalanced, one calculator may still hold every partition.
    wait_until(both_calculators_took_jobs, 120, "jobs spread over two calculators")

    big = submit(client, 24_000_000)  # beyond the digits stored so far: it must compute
    wait_status(client, big, "in_progress")
    computing = worker_of(client, big)
    name = next(n for n, p in stack.processes.items() if computing.endswith(f":{p.pid}"))
    stack.stop(name)  # SIGTERM: its unfinished job goes back to the group
    wait_complete(client, big, timeout=500)
    assert worker_of(client, big) != computing
    text = download_text(client, big)
    assert len(text) == 24_000_002
    assert hashlib.sha256(text[2:10_000_002].encode()).hexdigest() == SHA256_10M
    if name == "calculator":
        stack.start("calculator")  # the module's stack keeps its first calculator
    else:
        stack.stop("calculator-2")
