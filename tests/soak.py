"""Random-kill soak: `make run` (its supervisor, the broker, the four services) under a steady
stream of clients, while a random part is killed with -9 every 2 to 10 seconds.

    make soak                        # 5 minutes (SOAK_SECONDS=60 make soak for one)
    .venv/bin/python -m tests.soak --seconds 300

Clients submit jobs of 1 to 5,000,000 decimals (some with an Idempotency-Key, retried until
acknowledged), poll them, cancel some, and download the finished ones. At the end, with every
part up again, it checks what must hold whatever was killed: no acknowledged job lost, every
download right to the last digit (SHA-256 against mpmath), no job listed twice, no 5xx but 503,
and the view equal to a fresh fold of the whole log. tests/e2e/test_soak.py runs a minute of it.
"""

import argparse
import contextlib
import hashlib
import io
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from collections import Counter, deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from deploy.control import ask, socket_path
from deploy.kafka.local_broker import REPO_ROOT, free_port
from services.shared.settings import KafkaSettings
from services.shared.sqlite_view import SqliteView
from tests.log_and_view import how_view_differs_from_the_log, listed_twice
from tests.support import reference_pi_text, wait_until

PARTS = ("kafka", "projector", "calculator", "downloader", "api")
MAX_NUM = 5_000_000
TERMINAL = ("complete", "cancelled", "failed")


@dataclass
class Tally:
    """What the clients saw, counted from several threads."""

    acknowledged: dict[str, int] = field(default_factory=dict)
    with_key: int = 0
    cancelled: set[str] = field(default_factory=set)
    answers: Counter[str] = field(default_factory=Counter)
    downloads_checked: int = 0
    bad_downloads: list[str] = field(default_factory=list)
    idempotency_broken: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def saw(self, what: str) -> None:
        with self.lock:
            self.answers[what] += 1

    def unexpected_5xx(self) -> dict[str, int]:
        return {k: n for k, n in self.answers.items() if k[-3:].startswith("5") and k[-3:] != "503"}


class SoakStack:
    """`python -m deploy.run` on free ports in a directory of its own."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.api_port = free_port()
        env = {
            "PI_JOBS_DATA_DIR": str(data_dir),
            "PI_JOBS_PORT": str(self.api_port),
            "PI_JOBS_DOWNLOADER_PORT": str(free_port()),
            "KAFKA_PORT": str(free_port()),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "PI_JOBS_CALCULATOR_OPS_PORT": str(free_port()),
            "PI_JOBS_PROJECTOR_OPS_PORT": str(free_port()),
            "PI_JOBS_MAX_NUM": str(MAX_NUM),
        }
        self.kafka = KafkaSettings(kafka_bootstrap_servers=f"127.0.0.1:{env['KAFKA_PORT']}")
        data_dir.mkdir(parents=True, exist_ok=True)
        self._log = (data_dir / "run.log").open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deploy.run"],
            env={**os.environ, **env},
            cwd=REPO_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def status(self) -> dict[str, dict[str, Any]]:
        answer = ask(socket_path(self.data_dir), "status", timeout=10)
        return {part["name"]: part for part in answer["parts"]}

    def ready(self) -> bool:
        with contextlib.suppress(OSError, ValueError, KeyError, httpx.HTTPError):
            running = all(p["state"] == "running" for p in self.status().values())
            with httpx.Client(timeout=5) as client:
                return running and client.get(f"{self.url}/readyz").status_code == 200
        return False

    def wait_ready(self, timeout: float) -> None:
        def up() -> bool:
            if self.process.poll() is not None:
                raise RuntimeError(f"make run exited with code {self.process.returncode}")
            return self.ready()

        wait_until(up, timeout, "every part running and ready")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self._log.close()


def _num(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.7:
        return rng.randint(1, 10_000)
    if roll < 0.93:
        return rng.randint(10_001, 1_000_000)
    return rng.randint(1_000_001, MAX_NUM)


@contextlib.contextmanager
def _answers(tally: Tally, call: str) -> Iterator[None]:
    """Count a call's transport errors as answers too (a part is down: expected)."""
    try:
        yield
    except httpx.HTTPError as error:
        tally.saw(f"{call} {type(error).__name__}")
        raise


class Client:
    """One user: submit, poll, maybe cancel, download; again, until stopped."""

    def __init__(self, url: str, tally: Tally, stop: threading.Event, seed: int) -> None:
        self._http = httpx.Client(base_url=url, timeout=30)
        self._tally = tally
        self._stop = stop
        self._rng = random.Random(seed)

    def run(self) -> None:
        with self._http:
            while not self._stop.is_set():
                with contextlib.suppress(httpx.HTTPError):
                    self._one_job()

    def _post(self, num: int, key: str | None) -> httpx.Response:
        headers = {"Idempotency-Key": key} if key else {}
        with _answers(self._tally, "POST"):
            response = self._http.post("/pi_job", data={"num": str(num)}, headers=headers)
        self._tally.saw(f"POST {response.status_code}")
        return response

    def _submit(self, num: int) -> str | None:
        key = f"soak-{uuid.uuid4().hex}" if self._rng.random() < 0.2 else None
        while not self._stop.is_set():
            try:
                response = self._post(num, key)
            except httpx.HTTPError:
                if key is None:
                    return None  # it may or may not exist: never counted as acknowledged
                response = None
            if response is not None and response.status_code == 200:
                job_id: str = response.json()["job_id"]
                with self._tally.lock:
                    self._tally.acknowledged[job_id] = num
                    self._tally.with_key += key is not None
                if key and self._rng.random() < 0.3:
                    self._check_the_key_again(key, num, job_id)
                return job_id
            if response is not None and response.status_code not in (429, 503):
                return None  # counted in answers; not a job
            self._stop.wait(0.5 if response is None else 1.0)
        return None

    def _check_the_key_again(self, key: str, num: int, job_id: str) -> None:
        with contextlib.suppress(httpx.HTTPError):
            again = self._post(num, key)
            if again.status_code == 200 and again.json()["job_id"] != job_id:
                with self._tally.lock:
                    self._tally.idempotency_broken.append(job_id)

    def _one_job(self) -> None:
        num = _num(self._rng)
        job_id = self._submit(num)
        if job_id is None:
            return
        if self._rng.random() < 0.1:
            with _answers(self._tally, "DELETE"):
                cancelled = self._http.delete(f"/pi_job/{job_id}")
            self._tally.saw(f"DELETE {cancelled.status_code}")
            if cancelled.status_code == 200:
                with self._tally.lock:
                    self._tally.cancelled.add(job_id)
        status = self._poll(job_id)
        if status == "complete":
            check_download(self._http, self._tally, job_id, num)

    def _poll(self, job_id: str) -> str | None:
        deadline = time.monotonic() + 60
        while not self._stop.is_set() and time.monotonic() < deadline:
            with _answers(self._tally, "GET"):
                response = self._http.get(f"/pi_job/{job_id}")
            self._tally.saw(f"GET {response.status_code}")
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                return str(response.json()["status"])
            self._stop.wait(0.2)
        return None


def expected_sha256(num: int) -> str:
    return hashlib.sha256(reference_pi_text(MAX_NUM)[: num + 2].encode()).hexdigest()


def check_download(http: httpx.Client, tally: Tally, job_id: str, num: int) -> None:
    """Download the zip and compare its text with mpmath's digits; a cut download is retried,
    a wrong or truncated one that looks whole is counted."""
    with _answers(tally, "download"):
        response = http.get(f"/download_pi_job/{job_id}")
    tally.saw(f"download {response.status_code}")
    if response.status_code != 200:
        return
    try:
        text = zipfile.ZipFile(io.BytesIO(response.content)).read(f"digits_of_pi_{job_id}.txt")
        right = hashlib.sha256(text).hexdigest() == expected_sha256(num)
    except (zipfile.BadZipFile, KeyError):
        right = False
    with tally.lock:
        tally.downloads_checked += 1
        if not right:
            tally.bad_downloads.append(job_id)


class Killer:
    """Every 2 to 10 s, kill -9 a random part (sparing one killed 3 times in the last minute:
    5 in a minute is a crash loop, which the supervisor rightly leaves down)."""

    def __init__(self, stack: SoakStack, stop: threading.Event, seed: int) -> None:
        self.kills: Counter[str] = Counter()
        self._stack = stack
        self._stop = stop
        self._rng = random.Random(seed)
        self._recent: dict[str, deque[float]] = {part: deque() for part in PARTS}

    def run(self) -> None:
        while not self._stop.wait(self._rng.uniform(2, 10)):
            now = time.monotonic()
            for kills in self._recent.values():
                while kills and now - kills[0] > 60:
                    kills.popleft()
            candidates = [p for p in PARTS if len(self._recent[p]) < 3]
            part = self._rng.choice(candidates)
            with contextlib.suppress(OSError, ValueError, KeyError):
                pid = self._stack.status()[part]["pid"]
                if pid:
                    os.kill(pid, signal.SIGKILL)
                    self.kills[part] += 1
                    self._recent[part].append(now)


@dataclass
class Report:
    seconds: float
    kills: Counter[str]
    tally: Tally
    lost: list[str]
    listed_twice: list[str]
    view_difference: str | None

    def lines(self) -> list[str]:
        tally = self.tally
        return [
            f"soak of {self.seconds:.0f} s, a part killed with -9 every 2 to 10 s",
            f"kills made: {sum(self.kills.values())} "
            f"({', '.join(f'{p} {self.kills[p]}' for p in PARTS)})",
            f"jobs acknowledged: {len(tally.acknowledged)} ({tally.with_key} with an "
            f"Idempotency-Key, {len(tally.cancelled)} then cancelled)",
            f"acknowledged jobs lost: {len(self.lost)}",
            f"wrong or truncated downloads: {len(tally.bad_downloads)} "
            f"(of {tally.downloads_checked}, each checked against mpmath)",
            f"jobs listed twice: {len(self.listed_twice)}",
            f"an Idempotency-Key giving another job: {len(tally.idempotency_broken)}",
            f"5xx other than 503 seen by clients: {sum(tally.unexpected_5xx().values())}",
            f"view equal to a fresh fold of the whole log: "
            f"{'yes' if self.view_difference is None else 'no: ' + self.view_difference}",
            f"answers seen: {dict(sorted(tally.answers.items()))}",
        ]

    @property
    def held(self) -> bool:
        tally = self.tally
        return not (
            self.lost
            or tally.bad_downloads
            or self.listed_twice
            or tally.idempotency_broken
            or tally.unexpected_5xx()
            or self.view_difference is not None
        )


def soak(data_dir: Path, seconds: float, clients: int = 4, seed: int = 31415) -> Report:
    reference = threading.Thread(target=reference_pi_text, args=(MAX_NUM,), daemon=True)
    reference.start()
    stack = SoakStack(data_dir)
    try:
        stack.wait_ready(timeout=180)
        tally, stop = Tally(), threading.Event()
        killer = Killer(stack, stop, seed)
        threads = [
            threading.Thread(target=Client(stack.url, tally, stop, seed + n).run)
            for n in range(clients)
        ]
        threads.append(threading.Thread(target=killer.run))
        for thread in threads:
            thread.start()
        stop.wait(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        reference.join()
        stack.wait_ready(timeout=300)
        return _final_checks(stack, seconds, killer.kills, tally)
    finally:
        stack.stop()


def _final_checks(stack: SoakStack, seconds: float, kills: Counter[str], tally: Tally) -> Report:
    """With every part up: each acknowledged job finishes, downloads are right, the listing
    has each job once, and the view is the fold of the log."""
    unfinished = dict(tally.acknowledged)
    with httpx.Client(base_url=stack.url, timeout=60) as http:

        def all_finished() -> bool:
            for job_id, num in list(unfinished.items()):
                with contextlib.suppress(httpx.HTTPError):
                    response = http.get(f"/pi_job/{job_id}")
                    status = response.json().get("status") if response.status_code == 200 else None
                    if status in TERMINAL:
                        del unfinished[job_id]
                        if status == "complete" and tally.downloads_checked < 1000:
                            check_download(http, tally, job_id, num)
            return not unfinished

        with contextlib.suppress(AssertionError):  # what is still unfinished is reported lost
            wait_until(all_finished, 600, "every acknowledged job to finish")
        twice = listed_twice(http)
    view = SqliteView(stack.data_dir / "view.sqlite3")
    difference: str | None = "not compared"
    try:

        def view_is_the_fold() -> bool:
            nonlocal difference
            difference = how_view_differs_from_the_log(stack.kafka, view)
            return difference is None

        # The view catches up with the last events within seconds; else the difference is told.
        with contextlib.suppress(AssertionError):
            wait_until(view_is_the_fold, 60, "the view to equal the fold of the log")
    finally:
        view.close()
    return Report(seconds, kills, tally, sorted(unfinished), twice, difference)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    default = float(os.environ.get("SOAK_SECONDS", "300"))
    parser.add_argument("--seconds", type=float, default=default)
    parser.add_argument("--data-dir", type=Path, default=REPO_ROOT / "var" / "soak")
    args = parser.parse_args()
    shutil.rmtree(args.data_dir, ignore_errors=True)
    report = soak(args.data_dir, args.seconds)
    print("\n".join(report.lines()))
    return 0 if report.held else 1


if __name__ == "__main__":
    sys.exit(main())
