"""A steady stream of small submissions from background threads while a test breaks something,
with every answer recorded: what the crash and broker-loss tests check afterwards."""

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx


@dataclass
class Submission:
    num: int
    sent_at: float
    answered_at: float | None = None
    status: int | None = None  # None: no HTTP answer at all (timeout, connection error)
    body: Any = None
    error: str = ""
    # With `look_after`: the status of a GET of the job right after its POST's 200.
    seen_right_after: int | None = None

    @property
    def acknowledged(self) -> bool:
        return self.status == 200

    @property
    def job_id(self) -> str:
        job_id: str = self.body["job_id"]
        return job_id


class SubmissionStream:
    """POSTs `nums` one after another, never more than `in_flight` unanswered, one started every
    `pace` seconds at most (0: as soon as a POST is answered), until stopped or `most` are sent.

    A 429 holds its slot for the Retry-After it names, as a polite client waits. `expected`: the
    statuses an answer may have; has_acknowledged() fails at once on any other.
    """

    def __init__(
        self,
        url: str,
        nums: Iterator[int],
        in_flight: int,
        pace: float = 0.0,
        timeout: float = 60.0,
        most: int | None = None,
        look_after: bool = False,
        expected: frozenset[int] = frozenset({200, 429}),
    ) -> None:
        self._client = httpx.Client(base_url=url, timeout=timeout)
        self._nums = nums
        self._pace = pace
        self._most = most
        self._look_after = look_after
        self._expected = expected
        self._pool = ThreadPoolExecutor(in_flight)
        self._slots = threading.BoundedSemaphore(in_flight)
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._submissions: list[Submission] = []
        self._thread = threading.Thread(target=self._run, name="submissions")

    def _run(self) -> None:
        while not self._stopping.is_set() and len(self._submissions) < (self._most or 1 << 62):
            if self._slots.acquire(timeout=0.1):
                submission = Submission(next(self._nums), time.monotonic())
                with self._lock:
                    self._submissions.append(submission)
                self._pool.submit(self._post, submission)
                if self._pace:
                    self._stopping.wait(self._pace)  # the stream's pace, not a wait for a condition

    def _post(self, submission: Submission) -> None:
        retry_after = 0.0
        try:
            response = self._client.post("/pi_job", data={"num": str(submission.num)})
            submission.status = response.status_code
            submission.body = response.json()
            if response.status_code == 429:
                retry_after = float(response.headers["retry-after"])
            elif response.status_code == 200 and self._look_after:
                look = self._client.get(f"/pi_job/{submission.job_id}")
                submission.seen_right_after = look.status_code
        except (httpx.HTTPError, ValueError) as error:
            submission.error = repr(error)
        finally:
            submission.answered_at = time.monotonic()
            self._stopping.wait(retry_after)
            self._slots.release()

    def submissions(self) -> list[Submission]:
        with self._lock:
            return list(self._submissions)

    def acknowledged(self, sent_after: float = 0.0) -> list[Submission]:
        return [s for s in self.submissions() if s.acknowledged and s.sent_at > sent_after]

    def unexpected(self) -> list[Submission]:
        """Answered with a status not expected, or not answered within the client's timeout."""
        return [
            s
            for s in self.submissions()
            if s.answered_at is not None and s.status not in self._expected
        ]

    def has_acknowledged(self, count: int, sent_after: float = 0.0) -> bool:
        """For wait_until; fails at once on an answer that no wait would make right."""
        wrong = self.unexpected()
        assert not wrong, wrong[:3]
        return len(self.acknowledged(sent_after)) >= count

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> list[Submission]:
        """Stop submitting and wait for every POST in flight to be answered (or time out)."""
        self._stopping.set()
        self._thread.join()
        self._pool.shutdown(wait=True)
        self._client.close()
        return self.submissions()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
