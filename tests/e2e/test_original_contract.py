"""The calls of the original app's README, over HTTP, against all services as real processes."""

import asyncio
import hashlib
import json

import httpx
import pytest

from deploy.local_stack import LocalStack
from services.shared.kafka import log_end_offsets
from services.shared.settings import KafkaSettings
from tests.e2e.helpers import download_text, submit, wait_complete
from tests.support import reference_pi_text


def test_create_poll_download_twelve_digits(client: httpx.Client) -> None:
    job_id = submit(client, 12)
    status = wait_complete(client, job_id)
    assert {k: status[k] for k in ("success", "job_id", "num", "status")} == {
        "success": True,
        "job_id": job_id,
        "num": 12,
        "status": "complete",
    }
    text = download_text(client, job_id)
    assert text == "3.141592653589"


def test_json_submission_and_headers_of_the_download(client: httpx.Client) -> None:
    response = client.post("/pi_job", json={"num": 50})
    assert response.status_code == 200
    job_id = response.json()["job_id"]
    wait_complete(client, job_id)
    download = client.get(f"/download_pi_job/{job_id}")
    expected_sha = hashlib.sha256(reference_pi_text(50).encode()).hexdigest()
    assert download.headers["x-content-sha256"] == expected_sha
    assert download.headers["etag"] == f'"{expected_sha}"'
    assert "immutable" in download.headers["cache-control"]
    cached = client.get(
        f"/download_pi_job/{job_id}", headers={"If-None-Match": f'"{expected_sha}"'}
    )
    assert cached.status_code == 304 and cached.content == b""


def test_a_status_read_right_after_submitting_never_404s(client: httpx.Client) -> None:
    for num in range(1, 21):
        job_id = submit(client, num)
        status = client.get(f"/pi_job/{job_id}")
        assert status.status_code == 200, status.text
        assert status.json()["status"] in ("queued", "in_progress", "complete")


@pytest.mark.parametrize("num", [1000, 100_000, 1_000_000])
def test_downloads_match_an_independent_computation(client: httpx.Client, num: int) -> None:
    job_id = submit(client, num)
    wait_complete(client, job_id, timeout=300)
    assert download_text(client, job_id) == reference_pi_text(num)


def test_unknown_and_unfinished_jobs_answer_404_with_the_error_shape(
    client: httpx.Client,
) -> None:
    for path in (
        "/pi_job/0123456789abcdef0123456789abcdef",
        "/download_pi_job/0123456789abcdef0123456789abcdef",
        "/pi_job/1",
        "/download_pi_job/..%2F..%2Fetc%2Fpasswd",
        "/pi_job/%00",
    ):
        response = client.get(path)
        assert response.status_code == 404, (path, response.text)
        body = response.json()
        assert body["success"] is False and body["error"], path


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (b"num=0", {"content-type": "application/x-www-form-urlencoded"}, 422),
        (b"num=abc", {"content-type": "application/x-www-form-urlencoded"}, 422),
        (b"num=1000000001", {"content-type": "application/x-www-form-urlencoded"}, 422),
        (b"", {"content-type": "application/x-www-form-urlencoded"}, 422),
        (b'{"num": -3}', {"content-type": "application/json"}, 422),
        (b'{"num": 1.5}', {"content-type": "application/json"}, 422),
        (b'{"num": "12', {"content-type": "application/json"}, 400),
        (b"num=12", {"content-type": "text/plain"}, 415),
        (b"num=" + b"9" * 20_000, {"content-type": "application/x-www-form-urlencoded"}, 413),
    ],
)
def test_bad_submissions_are_refused_and_write_nothing(
    client: httpx.Client, stack: LocalStack, content: bytes, headers: dict[str, str], status: int
) -> None:
    before = _event_count(stack)
    response = client.post("/pi_job", content=content, headers=headers)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and isinstance(body["error"], str) and body["error"]
    assert _event_count(stack) == before


def test_the_api_is_ready_and_answers_unknown_paths_with_json(client: httpx.Client) -> None:
    assert client.get("/readyz").json() == {"success": True}
    response = client.get("/no/such/thing")
    assert response.status_code == 404 and response.json()["success"] is False
    response = client.put("/pi_job/0123456789abcdef0123456789abcdef")
    assert response.status_code == 405 and json.loads(response.text)["success"] is False


def _event_count(stack: LocalStack) -> int:
    """How many records the events topic holds: a refused request must not add one."""
    settings = KafkaSettings(
        kafka_bootstrap_servers=stack.bootstrap_servers, pi_jobs_topic_prefix=stack.topic_prefix
    )
    ends = asyncio.run(log_end_offsets(settings, [settings.events_topic]))
    assert ends, "the events topic exists once the stack is ready"
    return sum(ends.values())
