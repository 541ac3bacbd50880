"""Random access, search and hexadecimal jobs through all services as real processes, checked
against mpmath and the Pi API's published hexadecimal digits."""

import io
import json
import os
import subprocess
import sys
import zipfile

import httpx
import pytest

from deploy.local_stack import LocalStack
from services.shared.events import DIGITS_PER_CHUNK
from tests.support import (
    PI_API_FIRST_100_HEX,
    reference_pi_hex,
    reference_pi_text,
    wait_until,
)

MILLION = 1_000_000
HEX_DIGITS = 2 * DIGITS_PER_CHUNK + 5  # three hexadecimal chunks are computed


def pi_jobs(stack: LocalStack, *args: str) -> subprocess.CompletedProcess[str]:
    """The `pi-jobs` CLI as a user runs it, against the stack."""
    return subprocess.run(
        [sys.executable, "-m", "client.cli", *args],
        env={**os.environ, "PI_JOBS_URL": stack.url},
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def complete(client: httpx.Client, num: int, radix: int = 10) -> str:
    job_id: str = client.post("/pi_job", json={"num": num, "radix": radix}).json()["job_id"]

    def done() -> bool:
        status = client.get(f"/pi_job/{job_id}").json()
        assert status["status"] not in ("failed", "cancelled"), status
        return bool(status["status"] == "complete")

    wait_until(done, 300, f"a {num}-digit job of radix {radix} to complete")
    return job_id


@pytest.fixture(scope="module")
def decimals(stack: LocalStack) -> str:
    """The first million decimals are stored; returns "3" and them, from mpmath."""
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        complete(client, MILLION)
    return "3" + reference_pi_text(MILLION)[2:]


@pytest.mark.parametrize(
    ("start", "count"),
    [
        (0, 100),
        (DIGITS_PER_CHUNK - 10, 20),  # across a chunk boundary
        (7 * DIGITS_PER_CHUNK - 1, 3 * DIGITS_PER_CHUNK + 2),
        (MILLION, 1),  # the last stored digit
        (1, MILLION),  # the most one request may ask for
    ],
)
def test_any_stored_range_is_mpmaths(
    client: httpx.Client, decimals: str, start: int, count: int
) -> None:
    answer = client.get("/v1/pi", params={"start": start, "numberOfDigits": count})
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"content": decimals[start : start + count]}
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["etag"] and "immutable" in answer.headers["cache-control"]


def test_past_the_stored_digits_is_a_404_naming_the_job_that_would_store_them(
    client: httpx.Client, decimals: str
) -> None:
    answer = client.get("/v1/pi", params={"start": MILLION, "numberOfDigits": 2})
    assert answer.status_code == 404
    assert answer.json()["success"] is False
    assert f"num={MILLION + 1}" in answer.json()["error"]


def test_bad_parameters_are_a_400_and_never_a_5xx(client: httpx.Client) -> None:
    for query in ("start=-1", "numberOfDigits=1000001", "radix=2", "start=x"):
        answer = client.get(f"/v1/pi?{query}")
        assert answer.status_code == 400, query
        assert answer.json()["success"] is False
    for query in ("q=", "q=3.1", "q=" + "1" * 21, "q=12g&radix=16"):
        assert client.get(f"/v1/pi/search?{query}").status_code == 400, query


def test_search_finds_the_first_positions(client: httpx.Client, decimals: str) -> None:
    found = client.get("/v1/pi/search", params={"q": "999999", "limit": 2}).json()
    assert found["positions"] == [762, decimals.find("999999", 763)]
    birthday = client.get("/v1/pi/search", params={"q": "19700101"}).json()
    assert birthday["positions"][:1] == [p for p in [decimals.find("19700101")] if p >= 0]
    assert birthday["digits_stored"] == MILLION + 1


def test_a_hexadecimal_job_is_the_pi_apis_digits_and_mpmaths(
    client: httpx.Client, stack: LocalStack
) -> None:
    job_id = complete(client, 12, radix=16)
    status = client.get(f"/pi_job/{job_id}").json()
    assert (status["num"], status["radix"]) == (12, 16)
    archive = zipfile.ZipFile(io.BytesIO(client.get(f"/download_pi_job/{job_id}").content))
    assert archive.read(archive.namelist()[0]) == b"3.243f6a8885a3"

    complete(client, HEX_DIGITS, radix=16)
    hexadecimal = reference_pi_hex(3 * DIGITS_PER_CHUNK)
    first = client.get("/v1/pi", params={"radix": 16}).json()["content"]
    assert first == PI_API_FIRST_100_HEX
    crossing = client.get(
        "/v1/pi", params={"radix": 16, "start": 2 * DIGITS_PER_CHUNK - 5, "numberOfDigits": 10}
    )
    assert crossing.json()["content"] == hexadecimal[2 * DIGITS_PER_CHUNK - 5 :][:10]
    last = client.get(
        "/v1/pi", params={"radix": 16, "start": 3 * DIGITS_PER_CHUNK, "numberOfDigits": 1}
    )
    assert last.json()["content"] == hexadecimal[3 * DIGITS_PER_CHUNK]
    found = client.get("/v1/pi/search", params={"q": "243F6A88", "radix": 16}).json()
    assert found["positions"][0] == 1


def test_the_cli_reads_digits_and_searches(stack: LocalStack, decimals: str) -> None:
    digits = pi_jobs(stack, "digits", "--start", "0", "--count", "15")
    assert digits.returncode == 0, digits.stderr
    assert digits.stdout.strip() == decimals[:15]
    found = pi_jobs(stack, "search", "265358", "--json")
    assert found.returncode == 0, found.stderr
    assert json.loads(found.stdout)["positions"][0] == decimals.find("265358") == 6
    human = pi_jobs(stack, "search", "265358", "--limit", "2")
    assert human.stdout.split(", ")[0] == "6"
    missing = pi_jobs(stack, "digits", "--start", str(MILLION), "--count", "5")
    assert missing.returncode == 3 and "would store this range" in missing.stderr
