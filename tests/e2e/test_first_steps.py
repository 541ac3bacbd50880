"""What a new user meets first, as the README shows it: the first job, job ids, timestamps.

The README's first-job example runs first in this module, on the module's fresh stack: its
digits are not stored yet, as on a new user's first `make run`.
"""

import json
import re
import time
from pathlib import Path
from typing import Any

import httpx

from tests.e2e.helpers import download_text, submit, wait_complete

README = (Path(__file__).parents[2] / "README.md").read_text()
# One format for every timestamp the API sends: RFC 3339, UTC as "Z", microseconds.
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$")
PLACEHOLDER = "<varies>"


def first_job_example() -> tuple[int, dict[str, Any], str]:
    """The README's first example: the num it submits, the status it shows, the text it saves."""
    block = README.split("## The API", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    found = re.search(r"curl -d num=(\d+) localhost:3000/pi_job", block)
    assert found, block
    shown = block.split("curl localhost:3000/pi_job/", 1)[1].split("curl -OJ", 1)[0]
    text = "".join(line.strip().removeprefix("#") for line in shown.splitlines()[1:])
    status = json.loads(re.sub(r'"[^"]*…"', f'"{PLACEHOLDER}"', text))
    saved = re.search(r'= "(3\.\d+)"', block)
    assert saved, block
    return int(found[1]), status, saved[1]


def test_the_readme_first_job_example_on_a_fresh_system(client: httpx.Client) -> None:
    num, documented, text = first_job_example()
    job_id = submit(client, num)
    wait_complete(client, job_id)
    status = client.get(f"/pi_job/{job_id}").json()
    assert list(status) == list(documented), "the same fields, in the same order"
    for field, shown in documented.items():
        if shown == PLACEHOLDER:
            assert status[field] is not None, field
        elif field == "duration_seconds":
            assert isinstance(status[field], float)
        else:
            assert status[field] == shown, field
    assert download_text(client, job_id) == text


def test_one_timestamp_format_in_status_events_and_listing(client: httpx.Client) -> None:
    job_id = submit(client, 150_000)  # computed: it has started_at too
    wait_complete(client, job_id)
    status = client.get(f"/pi_job/{job_id}").json()
    with client.stream("GET", f"/pi_job/{job_id}/events") as events:
        data = [line for line in events.iter_lines() if line.startswith("data: ")]
    assert json.loads(data[-1].removeprefix("data: ")) == status
    listed = client.get("/pi_jobs", params={"limit": 100}).json()["jobs"]
    assert next(job for job in listed if job["job_id"] == job_id) == status
    for field in ("requested_at", "started_at", "finished_at"):
        assert TIMESTAMP.fullmatch(status[field]), (field, status[field])


def test_job_ids_sort_by_submission_time_unless_made_from_an_idempotency_key(
    client: httpx.Client,
) -> None:
    for _ in range(3):
        before = time.time_ns() // 1_000_000
        job_id = submit(client, 10)
        after = time.time_ns() // 1_000_000
        assert before <= int(job_id[:12], 16) <= after, "the id starts with its millisecond"
    submitted = time.time_ns() // 1_000_000
    keyed = client.post("/pi_job", data={"num": "10"}, headers={"Idempotency-Key": "first-steps"})
    assert keyed.status_code == 200, keyed.text
    assert abs(int(keyed.json()["job_id"][:12], 16) - submitted) > 60_000, "derived from the key"
    claim = next(s for s in re.split(r"(?<=\.)\s", README) if "ids sort by" in s)
    assert "Idempotency-Key" in claim, "the README says which ids do not sort by time"
