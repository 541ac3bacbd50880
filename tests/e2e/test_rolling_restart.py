"""The API's processes replaced one at a time (SIGHUP, `make restart PART=api`) under a steady
stream of clients on keep-alive connections: not one request fails, and every job acknowledged
meanwhile completes."""

import signal
import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from deploy.local_stack import LocalStack
from tests.e2e.helpers import wait_complete
from tests.stacks import start_stack, stop_stack
from tests.support import wait_until

API_PROCESSES = 2
CLIENTS = 6


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path) -> Iterator[LocalStack]:
    quota = {"PI_JOBS_SUBMISSIONS_PER_SECOND": "1e6", "PI_JOBS_SUBMISSION_BURST": "1000000"}
    running = start_stack(
        kafka_bootstrap,
        tmp_path,
        extra_env={"PI_JOBS_API_PROCESSES": str(API_PROCESSES), **quota},
    )
    yield running
    stop_stack(running, show_logs=True)


def api_workers(stack: LocalStack) -> set[int]:
    """The processes serving the API, children of its supervising process."""
    master = stack.processes["api"].pid
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return {
        int(pid) for pid in children if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes()
    }


class Clients:
    """Each client POSTs a job and GETs its status, over and over, on its own connection."""

    def __init__(self, url: str) -> None:
        self.outcomes: Counter[str] = Counter()
        self.jobs: list[str] = []
        self._url = url
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._pool = ThreadPoolExecutor(CLIENTS)
        self._futures = [self._pool.submit(self._run) for _ in range(CLIENTS)]

    def _run(self) -> None:
        with httpx.Client(base_url=self._url, timeout=30) as client:
            while not self._stop.is_set():
                for outcome in self._one_round(client):
                    with self._lock:
                        self.outcomes[outcome] += 1

    def _one_round(self, client: httpx.Client) -> Iterator[str]:
        try:
            posted = client.post("/pi_job", data={"num": "20"})
        except httpx.HTTPError as error:
            yield f"POST {type(error).__name__}"
            return
        yield f"POST {posted.status_code}"
        if posted.status_code != 200:
            return
        job_id = posted.json()["job_id"]
        with self._lock:
            self.jobs.append(job_id)
        try:
            yield f"GET {client.get(f'/pi_job/{job_id}').status_code}"
        except httpx.HTTPError as error:
            yield f"GET {type(error).__name__}"

    def answered(self) -> int:
        with self._lock:
            return sum(self.outcomes.values())

    def stop(self) -> Counter[str]:
        self._stop.set()
        for future in self._futures:
            future.result()
        self._pool.shutdown()
        return self.outcomes


def test_replacing_the_api_processes_one_at_a_time_fails_no_request(stack: LocalStack) -> None:
    before = api_workers(stack)
    assert len(before) == API_PROCESSES
    clients = Clients(stack.url)
    try:
        wait_until(lambda: clients.answered() >= 200, 60, "the clients under way")
        stack.processes["api"].send_signal(signal.SIGHUP)

        def all_replaced() -> bool:
            now = api_workers(stack)
            return len(now) == API_PROCESSES and not now & before

        wait_until(all_replaced, 120, "every API process replaced")
        answered_at_the_end = clients.answered()
        wait_until(lambda: clients.answered() >= answered_at_the_end + 200, 60, "more answers")
    finally:
        outcomes = clients.stop()
    print(f"rolling restart under load: {dict(outcomes)}")
    assert set(outcomes) == {"POST 200", "GET 200"}, outcomes
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        for job_id in clients.jobs[-50:]:
            wait_complete(client, job_id)
