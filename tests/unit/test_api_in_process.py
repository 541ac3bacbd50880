"""The API's answers that need no other process, served in this process: submissions, statuses,
cancelling, listing, the quota and readiness. The calculator's part is played by publishing its
events to the in-memory log (tests/in_process_api.py), which folds them into a real view."""

import io
import zipfile
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from services.shared.events import DIGITS_PER_CHUNK, DigitsStored, JobCompleted, JobRequested
from services.shared.settings import ApiSettings
from tests.in_process_api import InProcessApi, in_process_api
from tests.refusals import FORM, JSON, UNKNOWN_ID, assert_error
from tests.support import reference_pi_hex, reference_pi_text


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[InProcessApi]:
    async with in_process_api(tmp_path) as served:
        yield served


async def submit(client: httpx.AsyncClient, num: int) -> str:
    response = await client.post("/pi_job", data={"num": str(num)})
    assert response.status_code == 200, response.text
    job_id: str = response.json()["job_id"]
    return job_id


async def complete(served: InProcessApi, job_id: str, num: int) -> None:
    """As the calculator completes a job: its JobCompleted in the log."""
    completed = JobCompleted(job_id=job_id, num=num, digits_source="stored", compute_seconds=0)
    await served.log.publish(completed)


async def test_a_submission_publishes_one_request_and_is_read_back_queued(
    served: InProcessApi,
) -> None:
    job_id = await submit(served.client, 12)
    (requested,) = served.log.published
    assert isinstance(requested, JobRequested)
    assert (requested.job_id, requested.num, requested.idempotency_key) == (job_id, 12, None)
    status = (await served.client.get(f"/pi_job/{job_id}")).json()
    assert (status["job_id"], status["num"], status["status"]) == (job_id, 12, "queued")


# From tests/e2e/test_original_contract.py: the original README's refusals.
@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b"num=0", FORM, 422),
        (b"num=abc", FORM, 422),
        (b"num=1000000001", FORM, 422),
        (b"", FORM, 422),
        (b'{"num": -3}', JSON, 422),
        (b'{"num": 1.5}', JSON, 422),
        (b'{"num": "12', JSON, 400),
        (b"num=12", "text/plain", 415),
        (b"num=" + b"9" * 20_000, FORM, 413),
    ],
)
async def test_bad_submissions_of_the_original_contract_are_refused_and_publish_nothing(
    served: InProcessApi, content: bytes, content_type: str, status: int
) -> None:
    response = await served.client.post(
        "/pi_job", content=content, headers={"content-type": content_type}
    )
    assert_error(response, {status})
    assert served.log.published == []


async def test_unknown_and_unfinished_jobs_answer_404_with_the_error_shape(
    served: InProcessApi,
) -> None:
    unfinished = await submit(served.client, 12)
    for path in (
        "/pi_job/0123456789abcdef0123456789abcdef",
        "/download_pi_job/0123456789abcdef0123456789abcdef",
        f"/download_pi_job/{unfinished}",
        "/pi_job/1",
        "/download_pi_job/..%2F..%2Fetc%2Fpasswd",
        "/pi_job/%00",
        f"/pi_job/{UNKNOWN_ID}/events",
    ):
        assert_error(await served.client.get(path), {404})


async def test_a_finished_or_unknown_job_cannot_be_cancelled(served: InProcessApi) -> None:
    done = await submit(served.client, 10)
    await complete(served, done, 10)
    published = len(served.log.published)
    response = await served.client.delete(f"/pi_job/{done}")
    assert_error(response, {409})
    assert "complete" in response.json()["error"]
    assert_error(await served.client.delete(f"/pi_job/{UNKNOWN_ID}"), {404})
    assert len(served.log.published) == published


async def test_cancelling_a_queued_job_publishes_its_cancellation(served: InProcessApi) -> None:
    job_id = await submit(served.client, 10)
    response = await served.client.delete(f"/pi_job/{job_id}")
    assert response.json() == {"success": True, "job_id": job_id, "status": "cancelled"}
    assert [e.type for e in served.log.published] == ["JobRequested", "JobCancelled"]
    assert (await served.client.get(f"/pi_job/{job_id}")).json()["status"] == "cancelled"


# From tests/e2e/test_jobs_side_by_side.py.
async def test_jobs_are_listed_newest_first_page_by_page(served: InProcessApi) -> None:
    client = served.client
    mine = [await submit(client, n) for n in (3, 4, 5)]
    await complete(served, mine[0], 3)
    await complete(served, mine[2], 5)
    first = (await client.get("/pi_jobs", params={"limit": 2})).json()
    assert [j["job_id"] for j in first["jobs"]] == [mine[2], mine[1]]
    params = {"limit": 2, "cursor": first["next_cursor"]}
    second = (await client.get("/pi_jobs", params=params)).json()
    assert [j["job_id"] for j in second["jobs"]] == [mine[0]]
    assert second["next_cursor"] is None
    complete_jobs = (await client.get("/pi_jobs", params={"status": "complete"})).json()
    assert [j["job_id"] for j in complete_jobs["jobs"]] == [mine[2], mine[0]]
    for bad in ({"status": "bogus"}, {"limit": 0}, {"limit": 101}, {"cursor": "%%%"}):
        response = await client.get("/pi_jobs", params=bad)
        assert 400 <= response.status_code < 500 and response.json()["success"] is False, bad


# From tests/e2e/test_jobs_side_by_side.py and test_bad_input.py.
async def test_a_flood_from_one_client_is_refused_up_front(tmp_path: Path) -> None:
    quota = ApiSettings(pi_jobs_submission_burst=3, pi_jobs_submissions_per_second=0.01)
    async with in_process_api(tmp_path, quota) as served:
        answers = [await served.client.post("/pi_job", data={"num": "10"}) for _ in range(5)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429, 429]
        assert len(served.log.published) == 3
    refused = answers[-1]
    assert_error(refused, {429})
    assert "too many submissions" in refused.json()["error"]
    assert int(refused.headers["retry-after"]) > 0


async def test_ready_only_when_connected_with_every_consumer_running(tmp_path: Path) -> None:
    async with in_process_api(tmp_path) as served:
        ready = await served.client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"success": True})

        served.log.connected = False
        answer = await served.client.get("/readyz")
        assert_error(answer, {503})
        assert "not connected to kafka" in answer.json()["error"]


async def test_not_ready_while_a_consumer_role_has_nothing_running(tmp_path: Path) -> None:
    async def no_calculator() -> list[str]:
        return ["no calculator is running"]

    async with in_process_api(tmp_path, missing_consumers=no_calculator) as served:
        answer = await served.client.get("/readyz")
    assert_error(answer, {503})
    assert "no calculator is running" in answer.json()["error"]


async def test_a_hexadecimal_job_is_read_and_downloaded_in_hexadecimal(
    served: InProcessApi,
) -> None:
    response = await served.client.post("/pi_job", json={"num": 12, "radix": 16})
    job_id = response.json()["job_id"]
    (requested,) = served.log.published
    assert isinstance(requested, JobRequested) and (requested.num, requested.radix) == (12, 16)
    status = (await served.client.get(f"/pi_job/{job_id}")).json()
    assert (status["num"], status["radix"], status["status"]) == (12, 16, "queued")

    # As the calculator stores the hexadecimal chunk, then completes the job.
    hexadecimal = reference_pi_hex(DIGITS_PER_CHUNK)[1:]
    chunk = DigitsStored(radix=16, chunk_index=0, digits=hexadecimal)
    served.view.commit([], [chunk], {})
    await complete(served, job_id, 12)
    assert (await served.client.get(f"/pi_job/{job_id}")).json()["status"] == "complete"
    download = await served.client.get(f"/download_pi_job/{job_id}")
    archive = zipfile.ZipFile(io.BytesIO(download.content))
    assert archive.read(archive.namelist()[0]) == b"3.243f6a8885a3"
    read = await served.client.get("/v1/pi", params={"numberOfDigits": 13, "radix": 16})
    assert read.json() == {"content": "3243f6a8885a3"}
    decimals = await served.client.get("/v1/pi", params={"numberOfDigits": 2})
    assert decimals.status_code == 404, "no decimals are stored"


async def test_a_job_of_another_radix_is_not_served_by_stored_decimals(
    served: InProcessApi,
) -> None:
    decimals = DigitsStored(chunk_index=0, digits=reference_pi_text(DIGITS_PER_CHUNK)[2:])
    served.view.commit([], [decimals], {})
    job_id = await submit(served.client, 12)
    await complete(served, job_id, 12)
    assert (await served.client.get(f"/pi_job/{job_id}")).json()["status"] == "complete"
    hex_job = (await served.client.post("/pi_job", data={"num": "12", "radix": "16"})).json()
    await complete(served, hex_job["job_id"], 12)
    status = (await served.client.get(f"/pi_job/{hex_job['job_id']}")).json()
    assert status["status"] == "in_progress", "complete once its own digits are in the view"


async def test_an_idempotency_key_names_one_radix(served: InProcessApi) -> None:
    key = {"Idempotency-Key": "order-16"}
    first = await served.client.post("/pi_job", data={"num": "12", "radix": "16"}, headers=key)
    assert first.status_code == 200
    again = await served.client.post("/pi_job", data={"num": "12"}, headers=key)
    assert_error(again, {409})
    assert "num=12, radix=16" in again.json()["error"]
    assert len(served.log.published) == 1


async def test_a_hexadecimal_job_is_admitted_by_the_decimals_it_computes(tmp_path: Path) -> None:
    budget = ApiSettings(pi_jobs_max_pending_decimals_per_client=2_000_000)
    async with in_process_api(tmp_path, budget) as served:
        free = await served.client.post("/pi_job", data={"num": "1000000"})
        assert free.status_code == 200, "a million decimals cost nothing"
        # 1,000,000 hexadecimal digits take 1,204,120 decimals: costly, within the budget once.
        first = await served.client.post("/pi_job", data={"num": "1000000", "radix": "16"})
        assert first.status_code == 200, first.text
        second = await served.client.post("/pi_job", data={"num": "1000000", "radix": "16"})
        assert_error(second, {429})
        assert "1,204,120 decimals to compute" in second.json()["error"]
