"""What one client may do to others' jobs and to the queue, against the real services: queue
more work than its budget, cancel or read another key's jobs, make a visitor's browser submit
from another site's page. Each attack is refused, and the others' work goes on.

The attacker connects from 127.0.0.2, the others from 127.0.0.1: two addresses on loopback.
"""

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from deploy.local_stack import LocalStack
from tests.e2e.helpers import download_text, submit, wait_complete
from tests.stacks import start_stack, stop_stack
from tests.support import reference_pi_text

BUDGET = 3_000_000  # decimals one client may have queued or running
BIG = 2_000_000  # a job that fits the budget once, not twice
KEYS = {"alice": "alice-secret", "mallory": "mallory-secret"}


def client_from(url: str, address: str, **options: object) -> httpx.Client:
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, transport=transport, timeout=60, **options)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def open_stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    """No keys, as `make run`: limits by address."""
    settings = {
        "PI_JOBS_MAX_PENDING_DECIMALS_PER_CLIENT": str(BUDGET),
        "PI_JOBS_ALLOWED_ORIGINS": "https://friend.example",
        "PI_JOBS_METRICS_NETWORKS": "127.0.0.1",
        # Each API process weighs costly submissions one at a time, but not with the others.
        "PI_JOBS_API_PROCESSES": "1",
    }
    stack = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("open"), extra_env=settings)
    yield stack
    stop_stack(stack, show_logs=True)


@pytest.fixture(scope="module")
def keyed_stack(
    kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LocalStack]:
    keys = ",".join(f"{name}:{key}" for name, key in KEYS.items())
    stack = start_stack(
        kafka_bootstrap, tmp_path_factory.mktemp("keyed"), extra_env={"PI_JOBS_API_KEYS": keys}
    )
    yield stack
    stop_stack(stack, show_logs=True)


def as_key(stack: LocalStack, name: str) -> httpx.Client:
    return client_from(stack.url, "127.0.0.1", headers={"Authorization": f"Bearer {KEYS[name]}"})


# Cost


def test_one_client_cannot_queue_more_than_its_budget(open_stack: LocalStack) -> None:
    def attack(_: int) -> httpx.Response:
        with client_from(open_stack.url, "127.0.0.2") as attacker:
            return attacker.post("/pi_job", data={"num": str(BIG)})

    with (
        client_from(open_stack.url, "127.0.0.2") as attacker,
        client_from(open_stack.url, "127.0.0.1") as other,
    ):
        with ThreadPoolExecutor(20) as pool:  # all at once, as a script would
            answers = list(pool.map(attack, range(20)))
        admitted = [a.json()["job_id"] for a in answers if a.status_code == 200]
        refused = [a for a in answers if a.status_code == 429]
        print(f"\n20 submissions of {BIG:,} decimals: {len(admitted)} admitted, {len(refused)} 429")
        assert len(admitted) == 1 and len(refused) == 19, [a.text for a in answers]
        assert "your budget of 3,000,000" in refused[0].json()["error"]
        assert int(refused[0].headers["retry-after"]) > 0

        # Someone else's job is admitted and completes meanwhile.
        job_id = submit(other, 1000)
        wait_complete(other, job_id)
        assert download_text(other, job_id) == reference_pi_text(1000)

        # Cancelling gives the budget back.
        assert attacker.delete(f"/pi_job/{admitted[0]}").status_code == 200
        again = attacker.post("/pi_job", data={"num": str(BIG)})
        assert again.status_code == 200, again.text
        wait_complete(attacker, again.json()["job_id"], timeout=300)

        # Jobs the stored digits answer cost nothing: as many as the rate allows.
        for _ in range(10):
            assert attacker.post("/pi_job", data={"num": str(BIG)}).status_code == 200


# Browsers


def test_another_sites_page_cannot_submit_or_cancel(open_stack: LocalStack) -> None:
    with client_from(open_stack.url, "127.0.0.1") as browser:
        listed = len(browser.get("/pi_jobs", params={"limit": 100}).json()["jobs"])
        evil = {"Origin": "https://evil.example"}
        refused = browser.post("/pi_job", data={"num": "12"}, headers=evil)
        assert refused.status_code == 403 and refused.json()["success"] is False
        fetch_site = {"Sec-Fetch-Site": "cross-site", "Origin": "https://evil.example"}
        assert browser.post("/pi_job", json={"num": 12}, headers=fetch_site).status_code == 403
        job_id = submit(browser, 12)
        assert browser.delete(f"/pi_job/{job_id}", headers=evil).status_code == 403
        assert len(browser.get("/pi_jobs", params={"limit": 100}).json()["jobs"]) == listed + 1

        # The page itself (same origin), scripts (no Origin) and an allowed site may.
        own = {"Origin": open_stack.url, "Sec-Fetch-Site": "same-origin"}
        assert browser.post("/pi_job", data={"num": "12"}, headers=own).status_code == 200
        friend = {"Origin": "https://friend.example"}
        allowed = browser.post("/pi_job", data={"num": "12"}, headers=friend)
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://friend.example"
        preflight = browser.options(
            "/pi_job",
            headers={**friend, "Access-Control-Request-Method": "POST"},
        )
        assert preflight.status_code == 204
        assert "POST" in preflight.headers["access-control-allow-methods"]
        assert "access-control-allow-origin" not in browser.get("/healthz", headers=evil).headers


def test_answers_carry_browser_protections_and_no_banner(open_stack: LocalStack) -> None:
    with client_from(open_stack.url, "127.0.0.1") as browser:
        page = browser.get("/")
        job = browser.get(f"/pi_job/{submit(browser, 12)}")
        for answer in (page, job, browser.get("/pi_job/nope")):
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["x-frame-options"] == "DENY"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert "server" not in answer.headers
        policy = page.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in policy and "default-src 'self'" in policy


def test_metrics_and_the_worker_are_not_for_everyone(open_stack: LocalStack) -> None:
    with (
        client_from(open_stack.url, "127.0.0.1") as ops,
        client_from(open_stack.url, "127.0.0.2") as stranger,
    ):
        assert ops.get("/metrics").status_code == 200
        assert stranger.get("/metrics").status_code == 404
        job_id = submit(stranger, 12)
        assert wait_complete(stranger, job_id)["worker"] is None
        worker = stranger.get(f"/pi_job/{job_id}", params={"include": "worker"}).json()["worker"]
        assert isinstance(worker, str) and worker


# Keys


def test_with_keys_every_job_call_needs_one(keyed_stack: LocalStack) -> None:
    with client_from(keyed_stack.url, "127.0.0.1") as anonymous:
        for method, path in [
            ("POST", "/pi_job"),
            ("GET", "/pi_job/01a22d62e9247e98e67f358e439144d3"),
            ("GET", "/pi_jobs"),
            ("DELETE", "/pi_job/01a22d62e9247e98e67f358e439144d3"),
            ("GET", "/download_pi_job/01a22d62e9247e98e67f358e439144d3"),
        ]:
            answer = anonymous.request(
                method, path, data={"num": "12"} if method == "POST" else None
            )
            assert answer.status_code == 401, (method, path, answer.text)
            assert answer.headers["www-authenticate"] == "Bearer"
        wrong = anonymous.get("/pi_jobs", headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/").status_code == 200


def test_a_key_cannot_see_or_cancel_another_keys_jobs(keyed_stack: LocalStack) -> None:
    with as_key(keyed_stack, "alice") as alice, as_key(keyed_stack, "mallory") as mallory:
        running = submit(alice, 3_000_000)
        small = submit(alice, 1000)
        wait_complete(alice, small)

        assert mallory.delete(f"/pi_job/{running}").status_code == 404
        assert mallory.get(f"/pi_job/{running}").status_code == 404
        assert mallory.get(f"/pi_job/{small}").status_code == 404
        assert mallory.get(f"/download_pi_job/{small}").status_code == 404
        assert mallory.get(f"/pi_job/{small}/events").status_code == 404
        assert alice.get(f"/pi_job/{running}").json()["status"] in ("queued", "in_progress")

        mine = submit(mallory, 12)
        alice_ids = {
            j["job_id"] for j in alice.get("/pi_jobs", params={"limit": 100}).json()["jobs"]
        }
        mallory_ids = {
            j["job_id"] for j in mallory.get("/pi_jobs", params={"limit": 100}).json()["jobs"]
        }
        assert {running, small} <= alice_ids and mine not in alice_ids
        assert mallory_ids == {mine}

        # An Idempotency-Key is each key's own: the same one names two jobs.
        key = {"Idempotency-Key": "order-1"}
        first = alice.post("/pi_job", data={"num": "12"}, headers=key).json()["job_id"]
        second = mallory.post("/pi_job", data={"num": "12"}, headers=key).json()["job_id"]
        assert first != second

        # Its owner may cancel it.
        assert alice.delete(f"/pi_job/{running}").json()["status"] == "cancelled"
        assert download_text(alice, small) == reference_pi_text(1000)


def test_the_cli_takes_a_key(keyed_stack: LocalStack) -> None:
    from client.cli import main

    assert main(["--url", keyed_stack.url, "list"]) == 2  # 401: a usage error
    assert main(["--url", keyed_stack.url, "--key", KEYS["alice"], "list"]) == 0
