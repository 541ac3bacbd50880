"""Stopping everything, broker included, keeps every job; the view is rebuilt from the log alone."""

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from deploy.kafka.local_broker import LocalBroker
from tests.e2e.helpers import download_text, submit, wait_complete
from tests.stacks import start_stack, stop_stack
from tests.support import reference_pi_text


@pytest.fixture
def own_broker(tmp_path: Path) -> Iterator[LocalBroker]:
    """A broker of this test's own, since the test stops and restarts it."""
    broker = LocalBroker.on_free_ports(tmp_path / "kafka")
    with broker:
        yield broker


def run_jobs(url: str, nums: list[int]) -> dict[str, int]:
    with httpx.Client(base_url=url, timeout=60) as client:
        jobs = {submit(client, num): num for num in nums}
        for job_id in jobs:
            wait_complete(client, job_id)
        return jobs


def assert_jobs_served(url: str, jobs: dict[str, int]) -> None:
    with httpx.Client(base_url=url, timeout=60) as client:
        for job_id, num in jobs.items():
            status = wait_complete(client, job_id, timeout=60, rebuilding=True)
            assert status["num"] == num
            assert download_text(client, job_id) == reference_pi_text(num)


def test_jobs_survive_a_full_restart_and_a_rebuild_of_the_view(
    own_broker: LocalBroker, tmp_path: Path
) -> None:
    data_dir = tmp_path / "stack"
    stack = start_stack(own_broker.bootstrap_servers, data_dir, topic_prefix="restart")
    try:
        jobs = run_jobs(stack.url, [12, 3000, 700_001])
    finally:
        stop_stack(stack)

    own_broker.stop()
    own_broker.start()
    own_broker.wait_ready()
    stack = start_stack(own_broker.bootstrap_servers, data_dir, topic_prefix="restart")
    try:
        assert_jobs_served(stack.url, jobs)
        jobs |= run_jobs(stack.url, [5])
    finally:
        stop_stack(stack)

    # The view holds nothing the log does not: delete it and the projector rebuilds it.
    (data_dir / "view.sqlite3").unlink()
    for leftover in data_dir.glob("view.sqlite3-*"):
        leftover.unlink()
    stack = start_stack(own_broker.bootstrap_servers, data_dir, topic_prefix="restart")
    try:
        assert_jobs_served(stack.url, jobs)
    finally:
        stop_stack(stack, show_logs=True)
