"""A crash of any one part at any moment (kill -9) loses nothing and changes nothing twice.

Each test kills one part of a running stack with SIGKILL, restarts it, and checks that every job
whose POST was answered with success completes once with the right digits, and that the view is
exactly the fold of the log (`services/projector/projection.py`) with its read positions at the
end of the log: no event lost, none applied twice. Each test ends with all four parts running.
"""

import asyncio
import hashlib
import io
import itertools
import socket
import sqlite3
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from deploy.local_stack import SERVICES, LocalStack
from services.shared.events import (
    JobCancelled,
    JobCompleted,
    JobEvent,
    JobFailed,
    JobProgressed,
    JobRequested,
    JobStarted,
)
from services.shared.kafka import durable_producer, publish
from services.shared.settings import KafkaSettings
from services.shared.sqlite_view import SqliteView
from tests.e2e.helpers import (
    api_elsewhere,
    download_text,
    engine_processes,
    status,
    submit,
    wait_complete,
    wait_status,
    worker_of,
)
from tests.log_and_view import (
    LoggedEvent,
    how_view_differs_from_the_log,
    listed_job_ids,
    read_log,
)
from tests.reference_digits import SHA256_10M
from tests.submission_stream import SubmissionStream
from tests.support import reference_pi_text, wait_until

# Beyond the digits stored in this module's stack when the first test runs, so it computes; the
# downloader test asks for it again and is then served from the stored digits.
BIG = 15_000_000


def report(message: str) -> None:
    print(f"[crashes] {message}", file=sys.stderr, flush=True)


# Processes -------------------------------------------------------------------------------------


def _live_processes_in_session(session: int) -> set[int]:
    """Processes of a session that are not zombies. The stack starts each part in a session of
    its own, and the engine and its helper inherit it, so they are found even once orphaned."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, sid = fields[0], int(fields[3])
        if sid == session and state not in ("Z", "X"):
            found.add(int(entry.name))
    return found


def _projector_mid_transaction(view_file: Path) -> bool:
    """Whether the projector holds the view's write lock now: between the BEGIN and the COMMIT
    of a batch (our own attempt to take the lock gives up at once)."""
    db = sqlite3.connect(view_file, timeout=0, isolation_level=None)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("ROLLBACK")
        return False
    except sqlite3.OperationalError:  # "database is locked"
        return True
    finally:
        db.close()


def assert_all_parts_running(stack: LocalStack) -> None:
    for name in SERVICES:
        process = stack.processes.get(name)
        assert process is not None and process.poll() is None, f"{name} is not running"
    stack.wait_ready(timeout=90)  # /readyz answers 200


@pytest.fixture(autouse=True)
def every_part_running_afterwards(stack: LocalStack) -> Iterator[None]:
    """Even when a test fails half-way, the next one finds the whole stack up."""
    yield
    for name in SERVICES:
        process = stack.processes.get(name)
        if process is None or process.poll() is not None:
            stack.processes.pop(name, None)
            stack.start(name)
    stack.wait_ready(timeout=120)


# The log and the view --------------------------------------------------------------------------


def kafka_settings(stack: LocalStack) -> KafkaSettings:
    return KafkaSettings(
        kafka_bootstrap_servers=stack.bootstrap_servers, pi_jobs_topic_prefix=stack.topic_prefix
    )


def read_events(stack: LocalStack) -> list[LoggedEvent]:
    return asyncio.run(read_log(kafka_settings(stack)))[0]


def events_of(stack: LocalStack, job_id: str) -> list[LoggedEvent]:
    return [logged for logged in read_events(stack) if logged.event.job_id == job_id]


def open_view(stack: LocalStack) -> SqliteView:
    return SqliteView(stack.data_dir / "view.sqlite3")


def assert_view_is_the_fold_of_the_log(stack: LocalStack, timeout: float = 90) -> None:
    """Once the log is quiet, the view holds each job exactly as folding its events once in log
    order gives it, and has read the events topic to its end: nothing lost, nothing twice."""
    settings = kafka_settings(stack)
    view = open_view(stack)
    difference: str | None = "not checked yet"

    def view_matches_log() -> bool:
        nonlocal difference
        difference = how_view_differs_from_the_log(settings, view)
        return difference is None

    try:
        wait_until(view_matches_log, timeout, "the view to be the fold of the log")
    except AssertionError as timed_out:
        raise AssertionError(f"{timed_out}: {difference}") from None
    finally:
        view.close()


def assert_listed_once(client: httpx.Client, job_ids: Iterable[str]) -> None:
    counts = Counter(listed_job_ids(client))
    assert [j for j, n in counts.items() if n > 1] == [], "jobs listed more than once"
    assert [j for j in job_ids if counts[j] != 1] == [], "jobs missing from the listing"


def assert_completed_once(body: dict[str, Any], num: int) -> None:
    """The status of a job whose events were each applied once, in order."""
    assert body["status"] == "complete" and body["num"] == num, body
    assert body["progress"] == 1.0 and body["eta_seconds"] is None and body["error"] is None
    assert body["digits_source"] in ("stored", "computed"), body
    assert body["worker"] is None, "the calculator's host and pid are told only when asked"
    assert body["requested_at"] <= body["started_at"] <= body["finished_at"], body
    assert body["duration_seconds"] is not None and body["duration_seconds"] >= 0, body


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def assert_big_digits(text: str, num: int) -> None:
    assert len(text) == num + 2 and text.startswith("3.")
    assert sha256(text[2:10_000_002]) == SHA256_10M


# 1. The calculator ------------------------------------------------------------------------------


def test_a_calculator_killed_mid_computation_leaves_no_engine_and_its_job_is_rerun(
    client: httpx.Client, stack: LocalStack
) -> None:
    big = submit(client, BIG)
    wait_status(client, big, "in_progress", timeout=120)
    wait_until(lambda: engine_processes(stack), 60, "the digit engine to start")
    first_worker = worker_of(client, big)
    calculator = stack.processes["calculator"].pid
    session = _live_processes_in_session(calculator)
    assert len(session) >= 2, f"no engine beside the calculator: {session}"

    killed_at = time.monotonic()
    stack.kill("calculator")
    # PR_SET_PDEATHSIG: the engine (and its forked helper) die with the calculator.
    wait_until(
        lambda: not _live_processes_in_session(calculator),
        15,
        f"the engine processes {session - {calculator}} to die with the calculator",
    )
    report(f"engine gone {time.monotonic() - killed_at:.2f} s after the kill (pids {session})")

    # The API, the broker and the projector are up: submissions are still acknowledged.
    small = {submit(client, num): num for num in (1_000, 2_500)}
    for job_id in small:
        assert status(client, job_id)["status"] == "queued"
    assert status(client, big)["status"] == "in_progress"  # nobody knows the worker died yet

    stack.start("calculator")
    restarted_at = time.monotonic()
    wait_until(lambda: worker_of(client, big) != first_worker, 180, "the big job to be re-run")
    rerun_at = time.monotonic()
    report(
        f"big job re-run started {rerun_at - restarted_at:.1f} s after the calculator restarted, "
        f"{rerun_at - killed_at:.1f} s after the kill"
    )

    for job_id, num in small.items():
        assert_completed_once(wait_complete(client, job_id, timeout=180), num)
        assert download_text(client, job_id) == reference_pi_text(num)
    body = wait_complete(client, big, timeout=400)
    report(f"big job complete {time.monotonic() - rerun_at:.1f} s after its re-run started")
    assert_completed_once(body, BIG)
    assert body["digits_source"] == "computed" and worker_of(client, big) != first_worker
    assert_big_digits(download_text(client, big), BIG)

    starts = [e.event for e in events_of(stack, big) if isinstance(e.event, JobStarted)]
    assert [s.worker for s in starts][:1] == [first_worker] and len(starts) >= 2, starts
    assert_listed_once(client, [big, *small])
    assert_view_is_the_fold_of_the_log(stack)
    assert_all_parts_running(stack)


# 2. The projector -------------------------------------------------------------------------------


def test_a_projector_killed_while_events_flow_resumes_without_losing_or_repeating_any(
    client: httpx.Client, stack: LocalStack
) -> None:
    nums = (1 + n % 5_000 for n in itertools.count(start=1, step=131))
    stream = SubmissionStream(stack.url, nums, in_flight=3, look_after=True).start()

    def acknowledged(count: int) -> bool:
        return stream.has_acknowledged(count)

    try:
        wait_until(lambda: acknowledged(10), 120, "10 jobs acknowledged")
        # Mid-batch: inside the SQLite transaction that applies a batch to the view.
        view_file = (stack.data_dir / "view.sqlite3").resolve()
        wait_until(lambda: _projector_mid_transaction(view_file), 60, "the projector mid-batch")
        stack.kill("projector")
        at_kill = len(stream.acknowledged())
        stack.start("projector")
        restarted_at = time.monotonic()
        view = open_view(stack)
        try:
            before = view.positions()
            wait_until(lambda: view.positions() != before, 120, "the projector to resume")
        finally:
            view.close()
        resumed_at = time.monotonic()
        at_resume = len(stream.acknowledged())
        wait_until(lambda: acknowledged(at_resume + 10), 120, "10 more jobs acknowledged")
    finally:
        stream.stop()
    assert not stream.unexpected(), stream.unexpected()[:3]  # only 200, or 429 and a wait
    acks = stream.acknowledged()
    jobs = {s.job_id: s.num for s in acks}
    assert {s.seen_right_after for s in acks} <= {200, 404}
    unseen_right_after = [s for s in acks if s.seen_right_after == 404]
    report(
        f"projector: killed inside a batch's transaction after {at_kill} jobs acknowledged; "
        "the view moved again "
        f"{resumed_at - restarted_at:.1f} s after the restart; {at_resume - at_kill} jobs "
        f"acknowledged meanwhile, {len(jobs)} in all; {len(unseen_right_after)} "
        "answered 404 to a GET right after their POST's 200"
    )

    for job_id, num in jobs.items():
        # rebuilding: a POST answered while the projector was down may not be in the view yet.
        assert_completed_once(wait_complete(client, job_id, timeout=180, rebuilding=True), num)
        assert download_text(client, job_id) == reference_pi_text(num)
    assert_listed_once(client, list(jobs))
    assert_view_is_the_fold_of_the_log(stack)
    assert_all_parts_running(stack)


# 3. The API -------------------------------------------------------------------------------------


def _post_outcome(
    url: str, body: Callable[[], Iterator[bytes]] | bytes, key: str | None = None
) -> httpx.Response | httpx.HTTPError:
    headers = {"content-type": "application/x-www-form-urlencoded"}
    if key is not None:
        headers["Idempotency-Key"] = key
    try:
        with httpx.Client(base_url=url, timeout=60) as client:
            content = body if isinstance(body, bytes) else body()
            return client.post("/pi_job", content=content, headers=headers)
    except httpx.HTTPError as error:
        return error


def test_an_api_killed_right_after_a_post_returned_loses_nothing(
    client: httpx.Client, stack: LocalStack
) -> None:
    job_id = submit(client, 4_321)
    stack.kill("api")  # right after the 200
    with pytest.raises(httpx.TransportError):
        client.get("/healthz")

    # A request in flight when the API dies: its body is half sent.
    half_sent, finish = threading.Event(), threading.Event()

    def slow_body() -> Iterator[bytes]:
        yield b"num="
        half_sent.set()
        finish.wait(60)
        yield b"1234"

    stack.start("api")
    stack.wait_ready(timeout=120)
    key = f"crash-{job_id}"
    with ThreadPoolExecutor(1) as pool:
        in_flight = pool.submit(_post_outcome, stack.url, slow_body, key)
        assert half_sent.wait(60)
        stack.kill("api")
        finish.set()
        outcome = in_flight.result()
    report(f"api: a POST in flight when the API died got {outcome!r}")
    assert isinstance(outcome, httpx.TransportError), outcome

    # POSTs racing the kill: each gets a 200 (its job must complete) or a connection error.
    stack.start("api")
    stack.wait_ready(timeout=120)
    listed_before = set(listed_job_ids(client))
    outcomes: list[httpx.Response | httpx.HTTPError] = []
    with ThreadPoolExecutor(4) as pool:
        racing = [pool.submit(_post_outcome, stack.url, f"num={n}".encode()) for n in range(1, 41)]
        wait_until(lambda: sum(f.done() for f in racing) >= 4, 60, "the first POSTs answered")
        stack.kill("api")
        outcomes = [f.result() for f in racing]
    kinds = Counter(
        f"{o.status_code}" if isinstance(o, httpx.Response) else type(o).__name__ for o in outcomes
    )
    report(f"api: 40 POSTs racing a kill -9: {dict(kinds)}")
    answered = {
        o.json()["job_id"]: int(o.request.content.decode().removeprefix("num="))
        for o in outcomes
        if isinstance(o, httpx.Response) and o.status_code == 200
    }
    unexpected = [
        o
        for o in outcomes
        if not isinstance(o, httpx.TransportError)
        and not (isinstance(o, httpx.Response) and o.status_code == 200)
    ]
    assert unexpected == [], unexpected

    stack.start("api")
    stack.wait_ready(timeout=120)
    # The client whose POST failed retries with its key: one job, on the new process.
    retried = _post_outcome(stack.url, b"num=1234", key)
    assert isinstance(retried, httpx.Response) and retried.status_code == 200, retried
    again = _post_outcome(stack.url, b"num=1234", key)
    assert isinstance(again, httpx.Response) and again.json() == retried.json()
    jobs = {job_id: 4_321, retried.json()["job_id"]: 1_234, **answered}
    for acknowledged, num in jobs.items():
        assert_completed_once(wait_complete(client, acknowledged, timeout=120), num)
        assert download_text(client, acknowledged) == reference_pi_text(num)
    assert_listed_once(client, list(jobs))
    assert_view_is_the_fold_of_the_log(stack)
    unacknowledged = set(listed_job_ids(client)) - listed_before - set(jobs)
    report(f"api: {len(unacknowledged)} POSTs that got an error had created their job anyway")
    assert_all_parts_running(stack)


# 4. The downloader -----------------------------------------------------------------------------


@dataclass(frozen=True)
class CutDownload:
    received: bytes
    error: httpx.TransportError | None
    sha256: str


def _download_with_a_kill(stack: LocalStack, url: str, job_id: str) -> CutDownload:
    """Reads the start of the zip through an API that streams it from the downloader, kills the
    downloader, then reads on."""
    # A small receive buffer on our side, so less of the zip waits in buffers when it dies.
    small_buffer = [(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 * 1024)]
    transport = httpx.HTTPTransport(socket_options=small_buffer)
    received = bytearray()
    with (
        httpx.Client(base_url=url, timeout=60, transport=transport) as client,
        client.stream("GET", f"/download_pi_job/{job_id}") as response,
    ):
        assert response.status_code == 200
        # Its end is explicit either way: a cut is an error to any client, never an early end.
        assert "content-length" in response.headers or "transfer-encoding" in response.headers
        chunks = response.iter_raw()
        for chunk in chunks:
            received += chunk
            if len(received) >= 64 * 1024:
                break
        stack.kill("downloader")
        try:
            for chunk in chunks:
                received += chunk
        except httpx.TransportError as error:
            return CutDownload(bytes(received), error, response.headers["x-content-sha256"])
        return CutDownload(bytes(received), None, response.headers["x-content-sha256"])


def _forget_compressed_digits(stack: LocalStack) -> None:
    for path in (stack.data_dir / "zips").glob("*.deflate"):
        path.unlink()


def unzip_text(archive: bytes, job_id: str) -> str:
    return zipfile.ZipFile(io.BytesIO(archive)).read(f"digits_of_pi_{job_id}.txt").decode()


def is_whole_zip(archive: bytes, job_id: str, text_sha256: str) -> bool:
    try:
        return sha256(unzip_text(archive, job_id)) == text_sha256
    except zipfile.BadZipFile:
        return False


def test_a_downloader_killed_mid_download_gives_an_error_never_a_truncated_zip(
    client: httpx.Client, stack: LocalStack, tmp_path: Path
) -> None:
    job_id = submit(client, BIG)
    wait_complete(client, job_id, timeout=400)
    for attempt in itertools.count(1):
        with api_elsewhere(stack, tmp_path / "elsewhere") as url:
            cut = _download_with_a_kill(stack, url, job_id)
        if cut.error is not None:
            break
        # The response ended as complete: then the downloader had sent it all before it died.
        whole = is_whole_zip(cut.received, job_id, cut.sha256)
        assert whole, (
            f"the downloader died mid-stream, yet the response ended as complete, with "
            f"{len(cut.received)} bytes that are not the whole zip"
        )
        report(f"downloader: attempt {attempt}: the whole zip had left before the kill")
        assert attempt < 5, "the downloader always finished sending before it was killed"
        stack.start("downloader")
        stack.wait_ready(timeout=120)
    report(f"downloader: the client got {len(cut.received)} bytes, then {cut.error!r}")
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(io.BytesIO(cut.received))

    # The downloader had compressed the digits before it sent them: the API serves them itself.
    served_anyway = client.get(f"/download_pi_job/{job_id}")
    assert served_anyway.status_code == 200
    assert sha256(unzip_text(served_anyway.content, job_id)) == cut.sha256
    # What nobody has compressed yet needs the downloader.
    _forget_compressed_digits(stack)
    unavailable = client.get(f"/download_pi_job/{job_id}")
    assert unavailable.status_code == 503 and unavailable.json()["success"] is False
    assert not stack.readiness()[0]

    stack.start("downloader")
    stack.wait_ready(timeout=120)
    response = client.get(f"/download_pi_job/{job_id}")
    assert response.status_code == 200 and response.headers["x-content-sha256"] == cut.sha256
    assert len(response.content) > len(cut.received)
    text = unzip_text(response.content, job_id)
    assert sha256(text) == cut.sha256
    assert_big_digits(text, BIG)
    assert_listed_once(client, [job_id])
    assert_view_is_the_fold_of_the_log(stack)
    assert_all_parts_running(stack)


# 5. Duplicate events ---------------------------------------------------------------------------


async def _publish_all(stack: LocalStack, events: list[JobEvent]) -> list[tuple[int, int]]:
    settings = kafka_settings(stack)
    producer = durable_producer(settings)
    await producer.start()
    try:
        return [await publish(producer, settings.events_topic, e.job_id, e) for e in events]
    finally:
        await producer.stop()


def test_duplicate_and_late_events_do_not_change_a_finished_job(
    client: httpx.Client, stack: LocalStack
) -> None:
    job_id = submit(client, 777)
    wait_complete(client, job_id)
    before = status(client, job_id)
    sha_before = client.get(f"/download_pi_job/{job_id}").headers["x-content-sha256"]
    original = [logged.event for logged in events_of(stack, job_id)]
    # Computed, or served at once from digits an earlier test stored.
    assert [type(e) for e in original] in (
        [JobRequested, JobStarted, JobCompleted],
        [JobRequested, JobCompleted],
    ), original

    late_terminal: list[JobEvent] = [
        JobFailed(job_id=job_id, error="a late failure"),
        JobCancelled(job_id=job_id),
    ]
    reruns: list[JobEvent] = [
        JobStarted(job_id=job_id, worker="elsewhere:1"),
        JobProgressed(job_id=job_id, progress=0.5, eta_seconds=3.0),
        JobCompleted(job_id=job_id, num=777, digits_source="computed", compute_seconds=9.0),
        JobRequested(job_id=job_id, num=778),
    ]
    # The cancellation goes first: after the requests, the calculator could cancel its re-run.
    published = asyncio.run(_publish_all(stack, [*late_terminal, *original, *reruns]))
    assert len({partition for partition, _ in published}) == 1

    # Each duplicate request is served again by the calculator, from the stored digits: one
    # JobCompleted naming the calculator (the made-up one above names none).
    def calculator_answered_twice() -> bool:
        events = [e.event for e in events_of(stack, job_id)]
        served = {e for e in events if isinstance(e, JobCompleted) and e.worker is not None}
        return len(served) >= 3 and len(events) >= 2 * len(original) + 8

    wait_until(calculator_answered_twice, 60, "the calculator to serve both duplicate requests")
    assert_view_is_the_fold_of_the_log(stack)
    after = status(client, job_id)
    assert after == before
    assert client.get(f"/download_pi_job/{job_id}").headers["x-content-sha256"] == sha_before
    assert download_text(client, job_id) == reference_pi_text(777)
    assert_listed_once(client, [job_id])
    assert_all_parts_running(stack)
