"""Talking to the running service the way a client does."""

import io
import os
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from deploy.kafka.local_broker import free_port
from deploy.local_stack import LocalStack
from tests.support import wait_until


def submit(client: httpx.Client, num: int) -> str:
    response = client.post("/pi_job", data={"num": str(num)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["success"] is True
    job_id: str = body["job_id"]
    return job_id


def wait_complete(
    client: httpx.Client, job_id: str, timeout: float = 120, rebuilding: bool = False
) -> dict[str, Any]:
    """Poll until complete. `rebuilding`: the view is being rebuilt, so the job may be unknown."""

    def complete() -> dict[str, Any] | None:
        status = client.get(f"/pi_job/{job_id}")
        if rebuilding and status.status_code == 404:
            return None
        assert status.status_code == 200, status.text
        body: dict[str, Any] = status.json()
        assert body["status"] != "failed", body
        return body if body["status"] == "complete" else None

    return wait_until(complete, timeout, f"job {job_id} to complete")


def download_text(client: httpx.Client, job_id: str) -> str:
    response = client.get(f"/download_pi_job/{job_id}")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert (
        response.headers["content-disposition"]
        == f'attachment; filename="digits_of_pi_{job_id}.zip"'
    )
    archive = zipfile.ZipFile(io.BytesIO(response.content))
    assert archive.namelist() == [f"digits_of_pi_{job_id}.txt"]
    return archive.read(f"digits_of_pi_{job_id}.txt").decode("utf-8")


@contextmanager
def api_elsewhere(stack: LocalStack, cache_dir: Path) -> Iterator[str]:
    """Another API process with a compressed-digits directory of its own, as on a host without
    the downloader's disk: it streams downloads through from the downloader. Yields its URL."""
    port = free_port()
    name = f"api-elsewhere-{port}"
    stack.start_replica("api", name, PI_JOBS_PORT=str(port), PI_JOBS_ZIP_CACHE_DIR=str(cache_dir))
    url = f"http://127.0.0.1:{port}"
    try:

        def answers() -> bool:
            try:
                return httpx.get(f"{url}/healthz", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(answers, 60, "the other API process")
        yield url
    finally:
        stack.stop(name)


def status(client: httpx.Client, job_id: str) -> dict[str, object]:
    """With the worker that ran the job."""
    response = client.get(f"/pi_job/{job_id}", params={"include": "worker"})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def wait_status(client: httpx.Client, job_id: str, wanted: str, timeout: float = 120) -> None:
    wait_until(lambda: status(client, job_id)["status"] == wanted, timeout, f"{job_id} {wanted}")


def engine_processes(stack: LocalStack) -> list[int]:
    """Digit-engine processes started by this stack's calculators (not by anything else)."""
    calculators = {p.pid for name, p in stack.processes.items() if name.startswith("calculator")}
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent in calculators:
            found.append(int(pid))
    return found


def worker_of(client: httpx.Client, job_id: str) -> str:
    worker = status(client, job_id)["worker"]
    assert isinstance(worker, str)
    return worker
