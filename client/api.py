"""The pi-jobs HTTP API as Python calls: each failure is a CliError that carries its exit code."""

import json
import time
from collections.abc import Callable, Generator, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx

from client.sse import parse_sse

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 5
EXIT_HTTP_ERROR = 6
EXIT_BAD_DOWNLOAD = 7

TERMINAL_STATUSES = frozenset({"complete", "failed", "cancelled"})
JobStatus = dict[str, Any]


class CliError(Exception):
    def __init__(self, exit_code: int, message: str) -> None:
        super().__init__(message)
        self.exit_code = exit_code
        self.message = message


def exit_code_for(status_code: int) -> int:
    if status_code in (400, 401, 403, 422):
        return EXIT_USAGE
    if status_code == 404:
        return EXIT_NOT_FOUND
    if status_code == 409:
        return EXIT_CONFLICT
    if status_code in (429, 502, 503, 504):
        return EXIT_UNAVAILABLE
    return EXIT_HTTP_ERROR


def error_message(response: httpx.Response) -> str:
    """The API's `error` field, else the HTTP status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and isinstance(body.get("error"), str) and body["error"]:
        return " ".join(body["error"].split())
    return f"HTTP {response.status_code} {response.reason_phrase}".strip()


def raise_for_error(response: httpx.Response) -> None:
    if not response.is_success:
        raise CliError(exit_code_for(response.status_code), error_message(response))


class PiJobsApi:
    def __init__(
        self,
        base_url: str,
        transport: httpx.BaseTransport | None = None,
        poll_interval: float = 0.5,
        patience: float = 30.0,
        key: str | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.poll_interval = poll_interval
        # How long waiting rides out an unreachable service before giving up.
        self.patience = patience
        self._http = httpx.Client(
            base_url=self.base_url,
            transport=transport,
            timeout=httpx.Timeout(30, read=120),
            headers={"User-Agent": "pi-jobs-cli"}
            | ({"Authorization": f"Bearer {key}"} if key else {}),
        )

    def __enter__(self) -> "PiJobsApi":
        return self

    def __exit__(self, *_: object) -> None:
        self._http.close()

    def _unreachable(self, error: httpx.TransportError) -> CliError:
        reason = str(error) or type(error).__name__
        return CliError(EXIT_UNAVAILABLE, f"cannot reach {self.base_url}: {reason}")

    def _call(self, method: str, path: str, **kwargs: Any) -> JobStatus:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
        raise_for_error(response)
        try:
            body = response.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise CliError(EXIT_HTTP_ERROR, f"{method} {path}: the answer is not a JSON object")
        return body

    def submit(self, num: int, idempotency_key: str | None = None, radix: int = 10) -> str:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else {}
        asked = {"num": num} if radix == 10 else {"num": num, "radix": radix}
        body = self._call("POST", "/pi_job", json=asked, headers=headers)
        job_id = body.get("job_id")
        if not isinstance(job_id, str):
            raise CliError(EXIT_HTTP_ERROR, "POST /pi_job: the answer has no job_id")
        return job_id

    def digits(self, start: int, count: int, radix: int = 10) -> str:
        """Digits at positions [start, start + count) (position 0 is the 3), from GET /v1/pi."""
        params = {"start": start, "numberOfDigits": count, "radix": radix}
        content = self._call("GET", "/v1/pi", params=params).get("content")
        if not isinstance(content, str):
            raise CliError(EXIT_HTTP_ERROR, "GET /v1/pi: the answer has no content")
        return content

    def search(self, digits: str, limit: int, radix: int = 10) -> JobStatus:
        """Where `digits` first occur in the stored digits, from GET /v1/pi/search."""
        params = {"q": digits, "limit": limit, "radix": radix}
        return self._call("GET", "/v1/pi/search", params=params)

    def status(self, job_id: str) -> JobStatus:
        return self._call("GET", f"/pi_job/{quote(job_id, safe='')}")

    def cancel(self, job_id: str) -> JobStatus:
        return self._call("DELETE", f"/pi_job/{quote(job_id, safe='')}")

    def list_jobs(
        self, status: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> JobStatus:
        params = {"status": status, "limit": limit, "cursor": cursor}
        return self._call("GET", "/pi_jobs", params={k: v for k, v in params.items() if v})

    def follow(self, job_id: str) -> Generator[JobStatus, None, None]:
        """Each status from GET /pi_job/{id}/events, until the server ends the stream."""
        path = f"/pi_job/{quote(job_id, safe='')}/events"
        try:
            with self._http.stream("GET", path, headers={"Accept": "text/event-stream"}) as answer:
                if not answer.is_success:
                    answer.read()
                    raise_for_error(answer)
                for event in parse_sse(answer.iter_lines()):
                    if event.event != "status":
                        continue
                    try:
                        status = json.loads(event.data)
                    except ValueError:
                        raise CliError(EXIT_HTTP_ERROR, "malformed status event") from None
                    if not isinstance(status, dict) or not isinstance(status.get("status"), str):
                        raise CliError(EXIT_HTTP_ERROR, "malformed status event")
                    yield status
        except httpx.TransportError as error:
            raise self._unreachable(error) from None

    def wait(self, job_id: str, on_update: Callable[[JobStatus], None]) -> JobStatus:
        """Follow the job's events to a terminal status; poll GET /pi_job/{id} if they break."""
        events = self.follow(job_id)
        try:
            for status in events:
                on_update(status)
                if status["status"] in TERMINAL_STATUSES:
                    return status
        except CliError:
            pass  # no stream, a broken one or a bad event: polling tells the truth
        finally:
            events.close()
        return self.poll(job_id, on_update)

    def poll(self, job_id: str, on_update: Callable[[JobStatus], None]) -> JobStatus:
        unreachable_since: float | None = None
        while True:
            try:
                status = self.status(job_id)
            except CliError as error:
                if error.exit_code != EXIT_UNAVAILABLE:
                    raise
                unreachable_since = unreachable_since or time.monotonic()
                if time.monotonic() - unreachable_since > self.patience:
                    raise
                time.sleep(self.poll_interval)
                continue
            unreachable_since = None
            on_update(status)
            if status.get("status") in TERMINAL_STATUSES:
                return status
            time.sleep(self.poll_interval)

    @contextmanager
    def download(self, job_id: str) -> Iterator[httpx.Response]:
        """The streaming answer of GET /download_pi_job/{id}, once it is known to be a 200."""
        try:
            with self._http.stream("GET", f"/download_pi_job/{quote(job_id, safe='')}") as answer:
                if not answer.is_success:
                    answer.read()
                    raise_for_error(answer)
                yield answer
        except httpx.TransportError as error:
            raise self._unreachable(error) from None
