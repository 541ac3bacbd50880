"""Hostile clients against the running services, and a well-behaved one beside them: request
heads and bodies trickled a byte at a time (slowloris), idle connections up to an address's cap
and beyond, downloads never read, a forged X-Forwarded-For, a flood from several addresses,
WebSocket upgrades. The attackers get 408s, 503s and 429s; the victim keeps being answered,
promptly and correctly.

On Linux every 127.x.y.z address is this host, so each client has an address of its own: the
victim 127.0.0.1, the attackers 127.0.0.2 and up (each test its own, as the caps count per
address). Caps and deadlines are small here so that the attacks are cheap."""

import itertools
import json
import re
import selectors
import socket
import sys
import threading
import time
import zipfile
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from functools import partial
from io import BytesIO
from typing import Any

import httpx
import pytest

from deploy.local_stack import LocalStack
from tests.e2e.helpers import download_text, submit, wait_complete
from tests.stacks import start_stack, stop_stack
from tests.support import wait_until

REQUEST_SECONDS = 2.0  # a request must arrive whole within this (PI_JOBS_REQUEST_SECONDS)
PER_CLIENT = 120  # connections open from one address (PI_JOBS_MAX_CONNECTIONS_PER_CLIENT)
MAX_CONNECTIONS = 400  # connections open in the API process (PI_JOBS_MAX_CONNECTIONS)
DOWNLOADS_PER_CLIENT = 8  # downloads under way from one address (the default)
# Submissions from one address before the quota refuses (almost no refill): the victim's three
# in this file fit.
BURST = 5
PROMPTLY = 5.0  # the generous bound on "answered at once", on a shared 2-core machine
MARGIN = 5.0  # past a deadline, the most a closing may lag on that machine
KEEP_ALIVE_SECONDS = 5.0  # uvicorn's default for an idle keep-alive connection
LOG_EVERY_SECONDS = 10.0  # refusals are logged in one line this often

VICTIM = "127.0.0.1"
SLOWLORIS = ("127.0.0.2", "127.0.0.3", "127.0.0.4")
IDLER = "127.0.0.5"
SLOW_READER = "127.0.0.6"
FORGER = "127.0.0.7"
FLOOD = ("127.0.0.8", "127.0.0.9", "127.0.0.10", "127.0.0.11")
UPGRADER = "127.0.0.12"

BIG = 3_000_000  # decimals: a zip of 1.5 MB, far more than a slow reader's socket buffers hold


def report(message: str) -> None:
    print(f"[hostile clients] {message}", file=sys.stderr, flush=True)


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    caps = {
        "PI_JOBS_API_PROCESSES": "1",  # the caps count per process: one, so they are exact
        "PI_JOBS_REQUEST_SECONDS": f"{REQUEST_SECONDS:g}",
        "PI_JOBS_MAX_CONNECTIONS_PER_CLIENT": str(PER_CLIENT),
        "PI_JOBS_MAX_CONNECTIONS": str(MAX_CONNECTIONS),
        "PI_JOBS_MAX_DOWNLOADS_PER_CLIENT": str(DOWNLOADS_PER_CLIENT),
        "PI_JOBS_SUBMISSION_BURST": str(BURST),
        "PI_JOBS_SUBMISSIONS_PER_SECOND": "0.01",
    }
    running = start_stack(kafka_bootstrap, tmp_path_factory.mktemp("stack"), extra_env=caps)
    yield running
    stop_stack(running, show_logs=True)


@pytest.fixture(scope="module")
def finished_job(stack: LocalStack) -> str:
    """A complete job of 12 decimals, submitted by the victim: the one whose status it reads."""
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        job_id = submit(client, 12)
        wait_complete(client, job_id)
    return job_id


def client_from(address: str, url: str, timeout: float = PROMPTLY) -> httpx.Client:
    """An HTTP client whose connections come from `address`."""
    transport = httpx.HTTPTransport(local_address=address)
    return httpx.Client(base_url=url, timeout=timeout, transport=transport)


def connect_from(address: str, port: int, slow_reader: bool = False) -> socket.socket:
    """A raw TCP connection to the API from `address`. A slow reader's has a tiny receive buffer,
    and segments of an Ethernet's size: on loopback (64 KiB segments) the server's kernel would
    otherwise start with a send buffer of megabytes, and take a whole zip off its hands at once.
    Both are set before connecting, so the server sees them from the start."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        if slow_reader:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 1460)
        sock.bind((address, 0))
        sock.settimeout(PROMPTLY)
        sock.connect(("127.0.0.1", port))
    except BaseException:
        sock.close()
        raise
    return sock


@dataclass(frozen=True)
class Answer:
    """An HTTP response read off a raw socket (the body as far as it was read)."""

    status: int
    headers: dict[str, str]
    body: bytes

    @classmethod
    def parse(cls, data: bytes) -> "Answer":
        head, separator, body = data.partition(b"\r\n\r\n")
        assert separator, f"not an HTTP response head: {data[:200]!r}"
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        return cls(int(status_line.split(" ")[1]), headers, body)

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = json.loads(self.body)
        return body


def read_until_closed(sock: socket.socket, timeout: float) -> bytes:
    """All the server sends until it closes the connection, which it must within `timeout`."""
    deadline = time.monotonic() + timeout
    received = bytearray()
    while True:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            return bytes(received)
        except TimeoutError:
            raise AssertionError(f"the server kept the connection open over {timeout} s") from None
        if not data:
            return bytes(received)
        received += data


def read_head(sock: socket.socket, timeout: float = PROMPTLY) -> Answer:
    """The response's status line and headers (and whatever of its body came with them)."""
    deadline = time.monotonic() + timeout
    received = bytearray()
    while b"\r\n\r\n" not in received:
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        data = sock.recv(4096)
        assert data, f"closed before a response head: {bytes(received)!r}"
        received += data
    return Answer.parse(bytes(received))


def read_response(sock: socket.socket, timeout: float = PROMPTLY) -> Answer:
    """A whole response with a Content-Length, leaving the connection open."""
    return read_body(sock, read_head(sock, timeout), timeout)


def read_body(sock: socket.socket, head: Answer, timeout: float = PROMPTLY) -> Answer:
    """The response whose head was read, with the rest of its body (by its Content-Length)."""
    deadline = time.monotonic() + timeout
    body = bytearray(head.body)
    while len(body) < int(head.headers["content-length"]):
        sock.settimeout(max(deadline - time.monotonic(), 0.001))
        data = sock.recv(65536)
        assert data, "closed in the middle of a response body"
        body += data
    return Answer(head.status, head.headers, bytes(body))


def assert_json_refusal(answer: Answer, status: int) -> dict[str, Any]:
    assert answer.status == status, answer
    assert answer.headers["content-type"] == "application/json", answer
    body = answer.json()
    assert body["success"] is False and body["error"], body
    return body


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def api_log_lines(stack: LocalStack, after: int) -> list[dict[str, Any]]:
    """The API's log lines written past byte `after` of its file."""
    with stack.log_path("api").open("rb") as log:
        log.seek(after)
        return [json.loads(line) for line in log.read().splitlines()]


def assert_no_error_logged(stack: LocalStack, after: int) -> None:
    errors = [
        line for line in api_log_lines(stack, after) if line["level"] in ("error", "critical")
    ]
    assert not errors, errors


def refusal_lines(stack: LocalStack, after: int) -> list[dict[str, Any]]:
    return [
        line
        for line in api_log_lines(stack, after)
        if line["message"].startswith("refused ") and "connections" in line["message"]
    ]


class Victim:
    """A well-behaved client from its own address: reads a finished job's status and, every tenth
    time, /readyz, one after the other on a keep-alive connection, timing each answer. An answer
    slower than PROMPTLY is a timeout, which counts as a failure."""

    def __init__(self, url: str, job_id: str) -> None:
        self.outcomes: Counter[str] = Counter()
        self.latencies: dict[str, list[float]] = {"status": [], "readyz": []}
        self._url = url
        self._job_id = job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="victim")
        self._thread.start()

    def _run(self) -> None:
        with client_from(VICTIM, self._url) as client:
            for n in itertools.count():
                if self._stop.is_set():
                    return
                kind, path = ("readyz", "/readyz") if n % 10 == 0 else ("status", self._status)
                started = time.perf_counter()
                try:
                    outcome = str(client.get(path).status_code)
                except httpx.HTTPError as error:
                    outcome = type(error).__name__
                self.latencies[kind].append(time.perf_counter() - started)
                self.outcomes[f"{kind} {outcome}"] += 1

    @property
    def _status(self) -> str:
        return f"/pi_job/{self._job_id}"

    def answered(self) -> int:
        return sum(self.outcomes.values())

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * PROMPTLY)

    def stop(self, what: str) -> None:
        """Stops it, reports its figures, and checks it was answered 200 every time."""
        self.close()
        assert not self._thread.is_alive(), "the victim is stuck"
        status, readyz = self.latencies["status"], self.latencies["readyz"]
        assert status and readyz, f"the victim asked nothing during {what}: {self.outcomes}"
        report(
            f"victim during {what}: {dict(self.outcomes)}; status p50 "
            f"{percentile(status, 0.5) * 1000:.1f} ms, p99 {percentile(status, 0.99) * 1000:.1f}"
            f" ms, max {max(status) * 1000:.1f} ms; /readyz max {max(readyz) * 1000:.1f} ms"
        )
        assert set(self.outcomes) == {"status 200", "readyz 200"}, self.outcomes


@pytest.fixture
def victim(stack: LocalStack, finished_job: str) -> Iterator[Victim]:
    """The victim, asking from before the attack starts until the test has seen it through."""
    running = Victim(stack.url, finished_job)
    try:
        wait_until(lambda: running.answered() >= 10, 30, "the victim under way")
        yield running
    finally:
        running.close()


# 1. Slowloris ----------------------------------------------------------------------------------

PACE = 0.1  # seconds between the bytes of one trickling connection
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
SLOW_HEAD = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n" + b"X-Trickle: 1\r\n" * 200  # never ends
SLOW_BODY_HEAD = (
    b"POST /pi_job HTTP/1.1\r\nHost: 127.0.0.1\r\n"
    b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 5000\r\n\r\n"
)
# What each kind of connection sends at once, then what it trickles (neither ever ends).
TRICKLES = {
    "head": (b"", SLOW_HEAD),
    "body": (SLOW_BODY_HEAD, b"num=" + b"1" * 4000),
    "second head": (HEALTHZ, SLOW_HEAD),  # on a kept-alive connection, after an answer
}


@dataclass
class Trickle:
    """One slowloris connection: what it has yet to send, a byte at a time, and what came back."""

    kind: str
    sock: socket.socket
    pending: bytes
    opened: float
    received: bytearray = field(default_factory=bytearray)
    ended: float | None = None

    def read(self) -> bool:
        """Takes what has arrived; False once the server has closed the connection."""
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return True
        except ConnectionResetError:
            return False
        self.received += data
        return bool(data)

    def send_a_byte(self) -> bool:
        """False if the server has closed the connection."""
        try:
            self.sock.send(self.pending[:1])
        except BlockingIOError:
            return True
        except OSError:  # reset, broken pipe: closed under it
            return False
        self.pending = self.pending[1:]
        return True

    def answers(self) -> list[Answer]:
        """The responses it got, one after the other."""
        found, rest = [], bytes(self.received)
        while rest:
            answer = Answer.parse(rest)
            length = int(answer.headers["content-length"])
            found.append(Answer(answer.status, answer.headers, answer.body[:length]))
            rest = answer.body[length:]
        return found


def trickle_until_closed(connections: list[Trickle], until: float) -> None:
    """Sends each connection's bytes one at a time, PACE apart, until the server has closed each
    one or `until` has come. What has arrived is read before the next bytes go, so an answer the
    server wrote before it closed is seen."""
    with selectors.DefaultSelector() as selector:
        for connection in connections:
            connection.sock.setblocking(False)
            selector.register(connection.sock, selectors.EVENT_READ, connection)

        def end(connection: Trickle) -> None:
            selector.unregister(connection.sock)
            connection.ended = time.monotonic()

        next_byte = time.monotonic()
        while selector.get_map() and time.monotonic() < until:
            for key, _ in selector.select(timeout=PACE / 2):
                if not key.data.read():
                    end(key.data)
            if time.monotonic() >= next_byte:
                next_byte += PACE
                for key in list(selector.get_map().values()):
                    if not key.data.send_a_byte():
                        end(key.data)


def test_slowloris_connections_are_shed_by_the_request_deadline(
    stack: LocalStack, victim: Victim
) -> None:
    """300 connections (100 from each of three addresses, within the per-address cap) that send
    a byte every PACE: of a request head, of a POST's body, or of a second request head after a
    first request answered. The server closes each within the request deadline (and a margin),
    answering each head 408, while the victim's status reads and /readyz keep being answered
    200 promptly; nothing is logged as an error."""
    log_size = stack.log_path("api").stat().st_size
    connections = []
    with ExitStack() as cleanup:
        for address in SLOWLORIS:
            for n in range(100):
                kind = ("body", "second head", "head", "head", "head")[n % 5]
                at_once, trickled = TRICKLES[kind]
                sock = cleanup.enter_context(connect_from(address, stack.api_port))
                sock.sendall(at_once)
                connections.append(Trickle(kind, sock, trickled, time.monotonic()))
        trickle_until_closed(connections, time.monotonic() + REQUEST_SECONDS + 2 * MARGIN)
    victim.stop("slowloris")

    assert all(c.ended is not None for c in connections), "trickling connections left open"
    lasted = [c.ended - c.opened for c in connections if c.ended is not None]
    outcomes = Counter(
        f"{c.kind}: {' then '.join(str(a.status) for a in c.answers()) or 'closed'}"
        for c in connections
    )
    report(
        f"slowloris: {len(connections)} connections closed {min(lasted):.2f} to "
        f"{max(lasted):.2f} s after they opened (deadline {REQUEST_SECONDS:g} s): "
        f"{dict(outcomes)}"
    )
    assert max(lasted) < REQUEST_SECONDS + MARGIN
    for connection in connections:
        answers = connection.answers()
        if connection.kind == "second head":
            assert answers and answers.pop(0).status == 200, connection.received
        assert len(answers) == 1, connection.received
        refusal = assert_json_refusal(answers[0], 408)
        assert refusal["error"] == f"the request did not arrive within {REQUEST_SECONDS:g} s"
    assert_no_error_logged(stack, log_size)


# 2. Idle connections up to the per-address cap and beyond ------------------------------------


def served_on_each(address: str, port: int, count: int) -> bool:
    """Whether `count` connections at once from `address` are each answered a GET /healthz."""
    with ExitStack() as cleanup:
        connections = [cleanup.enter_context(connect_from(address, port)) for _ in range(count)]
        for sock in connections:
            sock.sendall(HEALTHZ)
        return all(read_head(sock).status == 200 for sock in connections)


def test_idle_connections_beyond_the_per_address_cap_are_refused_at_once(
    stack: LocalStack, victim: Victim
) -> None:
    """An address holding its PER_CLIENT connections idle, then opening more: each of those is
    answered a 503 JSON refusal at once and closed; the idle ones are answered 408 and closed
    after the request deadline; the refusals make one log line, not one each; the address is
    served again once its connections are gone; and the victim never notices."""
    extra = 30
    log_size = stack.log_path("api").stat().st_size
    with ExitStack() as cleanup:
        idle = [
            cleanup.enter_context(connect_from(IDLER, stack.api_port)) for _ in range(PER_CLIENT)
        ]
        opened = time.monotonic()
        beyond = [cleanup.enter_context(connect_from(IDLER, stack.api_port)) for _ in range(extra)]
        refusals = [Answer.parse(read_until_closed(sock, PROMPTLY)) for sock in beyond]
        refused_after = time.monotonic() - opened
        for refusal in refusals:
            body = assert_json_refusal(refusal, 503)
            assert body["error"] == f"{PER_CLIENT} connections from {IDLER} are open", body
            assert refusal.headers["retry-after"] == "1"
        timeouts = [read_until_closed(sock, REQUEST_SECONDS + MARGIN) for sock in idle]
        closed_after = time.monotonic() - opened
    report(
        f"idle: {extra} connections beyond the cap refused within {refused_after:.2f} s; "
        f"the {PER_CLIENT} idle ones closed within {closed_after:.2f} s "
        f"(deadline {REQUEST_SECONDS:g} s)"
    )
    for answer in timeouts:
        assert_json_refusal(Answer.parse(answer), 408)

    # Its connections gone, closed by the server and then by itself, the address has its whole
    # allowance again.
    for closed_by in ("the server", "the client"):
        served = partial(served_on_each, IDLER, stack.api_port, PER_CLIENT)
        wait_until(served, 10, f"{PER_CLIENT} connections served after {closed_by} closed them")

    # A keep-alive connection left idle after its answer is closed too (uvicorn's 5 s).
    with connect_from(VICTIM, stack.api_port) as sock:
        sock.sendall(HEALTHZ)
        answered = read_response(sock)
        assert answered.status == 200 and answered.headers.get("connection") != "close"
        idle_since = time.monotonic()
        assert read_until_closed(sock, KEEP_ALIVE_SECONDS + MARGIN) == b""
        report(f"idle: a kept-alive connection closed {time.monotonic() - idle_since:.2f} s later")
    victim.stop("idle connections")

    lines = wait_until(
        lambda: refusal_lines(stack, log_size), LOG_EVERY_SECONDS + MARGIN, "the refusals logged"
    )
    report(f"idle: logged {[line['message'] for line in lines]} {lines[0].get('by_address')}")
    assert len(lines) == 1, lines
    refused = re.fullmatch(r"refused (\d+) connections in the last (\d+) s", lines[0]["message"])
    assert refused is not None, lines[0]
    assert int(refused.group(1)) >= extra and lines[0]["by_address"][IDLER] >= extra, lines[0]


# 3. Downloads that are never read ---------------------------------------------------------------


def download_status(address: str, url: str, job_id: str) -> int:
    """The status a HEAD of the job's download gets from `address` (it takes a slot too)."""
    with client_from(address, url) as client:
        return client.head(f"/download_pi_job/{job_id}").status_code


def test_slow_readers_of_downloads_hold_only_their_own_downloads(
    stack: LocalStack, finished_job: str
) -> None:
    """110 downloads of a 1.5 MB zip from one address, each with a tiny receive buffer, never read
    past the response head: DOWNLOADS_PER_CLIENT are under way (and stay so), the others are
    refused 429 with Retry-After. Meanwhile the victim downloads a job promptly and correctly,
    the big zip too, and /readyz says 200. Once the reader goes, its address may download again."""
    log_size = stack.log_path("api").stat().st_size
    with httpx.Client(base_url=stack.url, timeout=60) as client:
        big = submit(client, BIG)
        started = time.monotonic()
        wait_complete(client, big, timeout=300)
        report(f"downloads: {BIG} decimals computed in {time.monotonic() - started:.1f} s")
        whole = client.head(f"/download_pi_job/{big}")  # the zip is built once, here
        assert whole.status_code == 200, whole
        size = int(whole.headers["content-length"])
    readers = 110
    request = f"GET /download_pi_job/{big} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    with ExitStack() as cleanup:
        connections = [
            cleanup.enter_context(connect_from(SLOW_READER, stack.api_port, slow_reader=True))
            for _ in range(readers)
        ]
        for sock in connections:
            sock.sendall(request)
        heads = [read_head(sock) for sock in connections]
        statuses = Counter(head.status for head in heads)
        report(f"downloads: {readers} never read, of a {size} bytes zip: {dict(statuses)}")
        assert statuses == {200: DOWNLOADS_PER_CLIENT, 429: readers - DOWNLOADS_PER_CLIENT}
        for sock, head in zip(connections, heads, strict=True):
            if head.status == 429:
                assert head.headers["retry-after"] == "5", head
                assert_json_refusal(read_body(sock, head), 429)

        with client_from(VICTIM, stack.url, timeout=60) as victim:
            started = time.monotonic()
            assert download_text(victim, finished_job) == "3.141592653589"
            took = time.monotonic() - started
            started = time.monotonic()
            zipped = victim.get(f"/download_pi_job/{big}")
            took_big = time.monotonic() - started
            ready = victim.get("/readyz")
        report(
            f"downloads: meanwhile the victim downloaded 12 decimals in {took * 1000:.1f} ms, "
            f"the {size} bytes zip in {took_big * 1000:.1f} ms; /readyz {ready.status_code}"
        )
        assert took < PROMPTLY and ready.status_code == 200, ready.text
        assert zipped.status_code == 200 and len(zipped.content) == size
        text = zipfile.ZipFile(BytesIO(zipped.content)).read(f"digits_of_pi_{big}.txt")
        assert len(text) == BIG + 2 and text.startswith(b"3.14159265358979")
        # The stuck ones are still under way: the address has no download to spare.
        assert download_status(SLOW_READER, stack.url, big) == 429

    def downloads_again() -> bool:
        return download_status(SLOW_READER, stack.url, big) == 200

    wait_until(downloads_again, 10, "the slow reader's downloads released once it went")
    assert_no_error_logged(stack, log_size)


# 4. A forged X-Forwarded-For ------------------------------------------------------------------


def test_a_forged_x_forwarded_for_does_not_dodge_the_submission_quota(stack: LocalStack) -> None:
    """POSTs claiming, in X-Forwarded-For, to come from a new address each time: none of them is
    believed (no proxy is trusted), so after BURST submissions the sender is refused 429, under
    its own address; the victim may still submit."""
    with client_from(FORGER, stack.url, timeout=60) as forger:
        answers = [
            forger.post(
                "/pi_job",
                data={"num": "5"},
                headers={"X-Forwarded-For": f"198.51.100.{n}", "X-Real-IP": f"198.51.100.{n}"},
            )
            for n in range(1, BURST + 4)
        ]
    report(f"forged X-Forwarded-For: {[answer.status_code for answer in answers]}")
    assert [answer.status_code for answer in answers] == [200] * BURST + [429] * 3
    for refused in answers[BURST:]:
        assert refused.json()["success"] is False
        assert f"too many submissions from {FORGER}:" in refused.json()["error"], refused.text
        assert int(refused.headers["retry-after"]) > 0
    with client_from(VICTIM, stack.url, timeout=60) as victim:
        wait_complete(victim, submit(victim, 7))


# 5. A flood from many addresses ---------------------------------------------------------------


def test_a_flood_fills_the_process_for_no_longer_than_the_request_deadline(
    stack: LocalStack, finished_job: str
) -> None:
    """Idle connections from four addresses, each within its own cap but together beyond the
    process's MAX_CONNECTIONS: the process refuses connections beyond it at once, anyone's (the
    victim's too: that cap keeps it from running out of descriptors, it protects no one), and
    once the request deadline has shed the flood, the victim is served again."""
    per_address = 110
    with ExitStack() as cleanup:
        flood = [
            cleanup.enter_context(connect_from(address, stack.api_port))
            for address in FLOOD
            for _ in range(per_address)
        ]
        with connect_from(VICTIM, stack.api_port) as sock:
            victim_refused = Answer.parse(read_until_closed(sock, PROMPTLY))
        answers = [Answer.parse(read_until_closed(s, REQUEST_SECONDS + MARGIN)) for s in flood]
    statuses = Counter(answer.status for answer in answers)
    report(f"flood: {len(flood)} idle connections from {len(FLOOD)} addresses: {dict(statuses)}")
    full = f"this server has {MAX_CONNECTIONS} connections open, its most"
    assert assert_json_refusal(victim_refused, 503)["error"] == full
    assert set(statuses) == {408, 503}
    assert MAX_CONNECTIONS - 10 <= statuses[408] <= MAX_CONNECTIONS  # a few are others'
    for answer in answers:
        if answer.status == 503:
            assert assert_json_refusal(answer, 503)["error"] == full

    def served() -> bool:
        with client_from(VICTIM, stack.url) as client:
            return client.get(f"/pi_job/{finished_job}").status_code == 200

    wait_until(served, PROMPTLY, "the victim served once the flood is shed")


# 6. WebSocket upgrades ------------------------------------------------------------------------

WEBSOCKET_UPGRADE = (
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def test_websocket_upgrade_requests_leave_no_connection_counted(stack: LocalStack) -> None:
    """The API has no WebSocket route: a request to upgrade is answered, and once its connection
    is gone it counts no more: its address may then open its whole allowance. (Last in this
    file: if it fails, the API process keeps these connections counted.)"""
    for _ in range(5):
        with connect_from(UPGRADER, stack.api_port) as sock:
            sock.sendall(WEBSOCKET_UPGRADE)
            report(f"websocket upgrade: answered {read_head(sock).status}")
    served = partial(served_on_each, UPGRADER, stack.api_port, PER_CLIENT)
    wait_until(served, PROMPTLY, f"{PER_CLIENT} connections from {UPGRADER} served")
