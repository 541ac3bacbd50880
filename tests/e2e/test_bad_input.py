"""Bad input against all services as real processes: what only a real HTTP server shows.

A request that is not valid HTTP/1.1 is refused by the HTTP server (uvicorn, h11) before it
reaches the app: those are sent over a raw socket, and the answer is the parser's 400. One bad
request per endpoint checks that the served processes answer as the app does in-process. Every
other row of bad input runs in-process, in tests/unit/test_api_bad_input.py. Every call that could
change something is checked against the events topic: its end offsets must not move.
"""

import asyncio
import socket
import uuid
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local_stack import LocalStack
from services.shared.settings import KafkaSettings
from tests.refusals import FORM, MAX_BODY, MULTIPART, UNKNOWN_ID, assert_error, multipart

# --- the events topic: nothing may be written -------------------------------------------------


class EventCounter:
    """The events topic's total end offset, read by one long-lived consumer (cheap per call)."""

    def __init__(self, stack: LocalStack) -> None:
        self._settings = KafkaSettings(
            kafka_bootstrap_servers=stack.bootstrap_servers,
            pi_jobs_topic_prefix=stack.topic_prefix,
        )
        # A loop of its own, not installed as the thread's loop: pytest-asyncio owns that one.
        self._runner = asyncio.Runner(loop_factory=asyncio.new_event_loop)
        try:
            self._consumer, self._partitions = self._runner.run(self._start())
        except BaseException:
            self._runner.close()
            raise

    async def _start(self) -> tuple[Any, list[Any]]:
        servers = self._settings.kafka_bootstrap_servers
        topic = self._settings.events_topic
        admin = AIOKafkaAdminClient(bootstrap_servers=servers)
        await admin.start()
        try:
            (description,) = await admin.describe_topics([topic])
        finally:
            await admin.close()
        partitions = [TopicPartition(topic, p["partition"]) for p in description["partitions"]]
        assert partitions, "the events topic exists once the stack is ready"
        consumer = AIOKafkaConsumer(bootstrap_servers=servers)  # made inside the loop it runs on
        await consumer.start()
        return consumer, partitions

    def count(self) -> int:
        """How many records the events topic holds: a refused request must not add one."""
        offsets = self._runner.run(self._consumer.end_offsets(self._partitions))
        return sum(offsets.values())

    def close(self) -> None:
        try:
            self._runner.run(self._consumer.stop())
        finally:
            self._runner.close()


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    """One client for the module (a new httpx.Client per test costs more than most tests)."""
    with httpx.Client(base_url=stack.url, timeout=60) as http:
        yield http


@pytest.fixture(scope="module")
def events(stack: LocalStack) -> Iterator[EventCounter]:
    # No job is submitted here: only a request could move the offsets.
    counter = EventCounter(stack)
    try:
        yield counter
    finally:
        counter.close()


# --- one bad request per endpoint, as served ----------------------------------------------------

SMOKE = [
    pytest.param("POST", "/pi_job", b"num=0", 422, id="POST-submission"),
    pytest.param("POST", "/pi_job", b"num=%d" % (10**9 + 1), 422, id="POST-above-max"),
    pytest.param("GET", f"/pi_job/{UNKNOWN_ID}", b"", 404, id="GET-status"),
    pytest.param("DELETE", f"/pi_job/{UNKNOWN_ID}", b"", 404, id="DELETE"),
    pytest.param("GET", f"/pi_job/{UNKNOWN_ID}/events", b"", 404, id="GET-events"),
    pytest.param("GET", "/pi_jobs?limit=0", b"", 422, id="GET-listing"),
    pytest.param("GET", "/pi_jobs?cursor=a", b"", 400, id="GET-listing-cursor"),
    pytest.param("GET", f"/download_pi_job/{UNKNOWN_ID}", b"", 404, id="GET-download"),
    pytest.param("PUT", "/pi_job", b"num=12", 405, id="PUT-method"),
]


@pytest.mark.parametrize(("method", "path", "body", "status"), SMOKE)
def test_each_endpoint_refuses_bad_input_as_served(
    api: httpx.Client, events: EventCounter, method: str, path: str, body: bytes, status: int
) -> None:
    before = events.count()
    headers = {"content-type": FORM} if body else {}
    assert_error(api.request(method, path, content=body, headers=headers), {status})
    assert events.count() == before


def test_the_downloader_refuses_an_unknown_id_on_its_own_port(stack: LocalStack) -> None:
    url = f"http://127.0.0.1:{stack.downloader_port}/download_pi_job/{UNKNOWN_ID}"
    assert_error(httpx.get(url, timeout=60), {404})


# --- methods the HTTP parser does not know ------------------------------------------------------


@pytest.mark.parametrize("path", ["/pi_job", "/pi_jobs"])
def test_made_up_methods_are_malformed_requests_and_do_not_grow_the_metrics(
    api: httpx.Client, events: EventCounter, path: str
) -> None:
    # HTTP's parser knows the registered methods only: anything else is a malformed request.
    method = f"M{uuid.uuid4().hex.upper()}"
    before = events.count()
    assert_error(api.request(method, path, content=b"num=12"), {400})
    assert method not in api.get("/metrics").text
    assert events.count() == before


# --- malformed HTTP, over a raw socket --------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """A response as read off the socket; None status: the server closed without answering."""

    status: int | None
    headers: dict[str, str]
    body: bytes


def raw_exchange(port: int, request: bytes, half_close: bool = False) -> Answer:
    """Send bytes as they are; read the first answer (the server closes: Connection: close)."""
    received = bytearray()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as conn:
        try:
            conn.sendall(request)
            if half_close:
                conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may refuse before the request is all sent: read its answer
        try:
            while chunk := conn.recv(65536):
                received += chunk
        except ConnectionResetError:
            pass  # after a 400 on a huge request, the close can be a reset
    return _parse(bytes(received))


def _parse(data: bytes) -> Answer:
    if not data:
        return Answer(None, {}, b"")
    head, _, rest = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body = bytearray()
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body += rest[:size]
            rest = rest[size + 2 :]
        return Answer(int(status_line.split()[1]), headers, bytes(body))
    length = int(headers.get("content-length", len(rest)))
    return Answer(int(status_line.split()[1]), headers, rest[:length])


def _chunked(body: bytes, piece: int = 4096) -> bytes:
    out = b"".join(
        b"%x\r\n" % len(body[i : i + piece]) + body[i : i + piece] + b"\r\n"
        for i in range(0, len(body), piece)
    )
    return out + b"0\r\n\r\n"


# What a row expects: the app's JSON error with one of these statuses, the HTTP parser's JSON 400
# (the request never reached the app), or a close without any answer.
APP = "app"
PARSER = "parser"
CLOSED = "closed"
PARSER_REFUSAL = b'{"success": false, "error": "malformed HTTP request'


@dataclass(frozen=True)
class Raw:
    request: bytes
    accept: frozenset[str]
    statuses: frozenset[int] = frozenset()
    half_close: bool = False


def _raw(
    name: str,
    request: bytes,
    *accept: str,
    statuses: Collection[int] = (),
    half_close: bool = False,
    marks: Any = (),
) -> Any:
    row = Raw(request, frozenset(accept), frozenset(statuses), half_close)
    return pytest.param(row, id=name, marks=marks)


_HOST = b"Host: localhost\r\nConnection: close\r\n"


def _post(headers: bytes, body: bytes = b"", target: bytes = b"/pi_job") -> bytes:
    return b"POST " + target + b" HTTP/1.1\r\n" + _HOST + headers + b"\r\n" + body


def _get(target: bytes, version: bytes = b"HTTP/1.1") -> bytes:
    return b"GET " + target + b" " + version + b"\r\n" + _HOST + b"\r\n"


_FORM_H = b"Content-Type: application/x-www-form-urlencoded\r\n"
_JSON_H = b"Content-Type: application/json\r\n"
_CHUNKED_H = b"Transfer-Encoding: chunked\r\n"
_BIG_MULTIPART = multipart((b'name="pad"', b"a" * (4 * MAX_BODY)), (b'name="num"', b"0"))

RAW_REQUESTS = [
    # Content-Length
    _raw("content-length-negative", _post(b"Content-Length: -1\r\n"), PARSER),
    _raw("content-length-word", _post(b"Content-Length: abc\r\n", b"num=0"), PARSER),
    _raw("content-length-plus-sign", _post(b"Content-Length: +5\r\n", b"num=0"), PARSER),
    _raw(
        "content-length-two-values",
        _post(b"Content-Length: 5\r\nContent-Length: 6\r\n", b"num=12"),
        PARSER,
    ),
    _raw("content-length-30-digits", _post(b"Content-Length: " + b"9" * 30 + b"\r\n"), PARSER),
    _raw(
        "content-length-1GB-refused-before-the-body",
        _post(_JSON_H + b"Content-Length: 1000000000\r\n"),
        APP,
        statuses={413},
    ),
    _raw(
        "expect-100-continue-oversized",
        _post(_JSON_H + b"Expect: 100-continue\r\nContent-Length: 1000000\r\n"),
        APP,
        statuses={413},
    ),
    # The first 3 bytes are the body ("num"); the rest is never read (Connection: close).
    _raw(
        "body-longer-than-declared",
        _post(_FORM_H + b"Content-Length: 3\r\n", b"num=12"),
        APP,
        statuses={422},
    ),
    _raw(
        "body-shorter-than-declared-then-eof",
        _post(_FORM_H + b"Content-Length: 100\r\n", b"num=12"),
        CLOSED,
        half_close=True,
    ),
    # chunked bodies (no Content-Length to refuse up front)
    _raw(
        "chunked-form-over-16KiB",
        _post(_FORM_H + _CHUNKED_H, _chunked(b"num=12&pad=" + b"a" * (4 * MAX_BODY))),
        APP,
        statuses={413},
    ),
    _raw(
        "chunked-json-over-16KiB",
        _post(
            _JSON_H + _CHUNKED_H, _chunked(b'{"num": 12, "p": "' + b"a" * (4 * MAX_BODY) + b'"}')
        ),
        APP,
        statuses={413},
    ),
    _raw(
        "chunked-multipart-over-16KiB",
        _post(
            b"Content-Type: " + MULTIPART.encode() + b"\r\n" + _CHUNKED_H, _chunked(_BIG_MULTIPART)
        ),
        APP,
        statuses={413},
    ),
    _raw("chunked-bad-size", _post(_JSON_H + _CHUNKED_H, b"zz\r\nabc\r\n0\r\n\r\n"), PARSER),
    _raw(
        "chunked-json-deep-list",
        _post(_JSON_H + _CHUNKED_H, _chunked(b"[" * 8000 + b"]" * 8000)),
        APP,
        statuses={400, 422},
    ),
    _raw("transfer-encoding-gzip", _post(_JSON_H + b"Transfer-Encoding: gzip\r\n", b"xx"), PARSER),
    _raw(
        "transfer-encoding-twice",
        _post(_JSON_H + _CHUNKED_H + _CHUNKED_H, _chunked(b'{"num": 0}')),
        PARSER,
    ),
    # h11 reads the chunked body and ignores Content-Length (RFC 9112 6.3): the app sees num=0.
    _raw(
        "transfer-encoding-and-content-length",
        _post(_JSON_H + b"Content-Length: 4\r\n" + _CHUNKED_H, _chunked(b'{"num": 0}')),
        APP,
        PARSER,
        statuses={422},
    ),
    # request line and target
    _raw("nul-in-path", _get(b"/pi_job/\x00abc"), PARSER),
    _raw("raw-utf8-in-path", _get("/pi_job/ünïcödé".encode()), PARSER),
    _raw("raw-invalid-utf8-in-path", _get(b"/pi_job/\xff\xfe"), PARSER),
    _raw("space-in-path", _get(b"/pi_job/a b"), PARSER),
    _raw("raw-traversal", _get(b"/pi_job/../../etc/passwd"), APP, statuses={404}),
    _raw("raw-download-traversal", _get(b"/download_pi_job/../../etc/passwd"), APP, statuses={404}),
    _raw("asterisk-target", b"OPTIONS * HTTP/1.1\r\n" + _HOST + b"\r\n", APP, statuses={404}),
    # h11 takes a request line up to its 16 KiB buffer; past it, it depends on how the bytes
    # arrive (all at once: parsed; in pieces: refused, and the close may come as a reset before
    # the 400 is read), so each of these answers is right.
    _raw("path-100KiB", _get(b"/pi_job/" + b"a" * 100_000), APP, PARSER, CLOSED, statuses={404}),
    _raw("path-1MiB", _get(b"/pi_job/" + b"a" * 1_000_000), APP, PARSER, CLOSED, statuses={404}),
    _raw(
        "query-100KiB",
        _get(b"/pi_jobs?cursor=" + b"A" * 100_000),
        APP,
        PARSER,
        CLOSED,
        statuses={400},
    ),
    _raw("raw-invalid-utf8-in-query", _get(b"/pi_jobs?cursor=\xff"), PARSER),
    _raw("raw-utf8-in-query", _get("/pi_jobs?cursor=é".encode()), PARSER),
    _raw("bad-method-characters", b"G@T /healthz HTTP/1.1\r\n" + _HOST + b"\r\n", PARSER),
    _raw("unknown-method", b"FOO /pi_job HTTP/1.1\r\n" + _HOST + b"\r\n", PARSER),
    _raw(
        "unknown-http-version",
        b"POST /pi_job HTTP/9.9\r\n" + _HOST + _FORM_H + b"Content-Length: 5\r\n\r\nnum=0",
        APP,
        PARSER,
        statuses={422},
    ),
    # headers
    _raw(
        "missing-host", b"GET /healthz HTTP/1.1\r\nConnection: close\r\n\r\n", APP, statuses={400}
    ),
    _raw(
        "header-without-colon",
        b"GET /healthz HTTP/1.1\r\n" + _HOST + b"Bad Header\r\n\r\n",
        PARSER,
    ),
    _raw(
        "header-200KiB",
        b"GET /healthz HTTP/1.1\r\n" + _HOST + b"X-Big: " + b"a" * 200_000 + b"\r\n\r\n",
        PARSER,
        CLOSED,
    ),
    _raw(
        "idempotency-key-nul",
        _post(_FORM_H + b"Idempotency-Key: a\x00b\r\nContent-Length: 6\r\n", b"num=12"),
        PARSER,
    ),
    _raw(
        "idempotency-key-cr",
        _post(_FORM_H + b"Idempotency-Key: a\rb\r\nContent-Length: 6\r\n", b"num=12"),
        PARSER,
    ),
    _raw(
        "idempotency-key-lf",
        _post(_FORM_H + b"Idempotency-Key: a\nb\r\nContent-Length: 6\r\n", b"num=12"),
        PARSER,
    ),
    # obs-fold: h11 joins the continuation line with a space, and a space is not allowed in a key
    _raw(
        "idempotency-key-folded",
        _post(_FORM_H + b"Idempotency-Key: a\r\n b\r\nContent-Length: 6\r\n", b"num=12"),
        APP,
        PARSER,
        statuses={400},
    ),
    _raw(
        "invalid-utf8-content-type",
        _post(b"Content-Type: \xff\xfe\r\nContent-Length: 6\r\n", b"num=12"),
        APP,
        statuses={415},
    ),
]


@pytest.mark.parametrize("row", RAW_REQUESTS)
def test_malformed_http_is_refused_and_writes_nothing(
    stack: LocalStack, api: httpx.Client, events: EventCounter, row: Raw
) -> None:
    before = events.count()
    answer = raw_exchange(stack.api_port, row.request, row.half_close)
    shown = f"{answer.status} {answer.headers.get('content-type')} {answer.body[:300]!r}"
    if answer.status is None:
        assert CLOSED in row.accept, f"closed without an answer: {row.request[:120]!r}"
    elif answer.body.startswith(PARSER_REFUSAL):
        assert PARSER in row.accept, shown
        assert answer.status == 400, shown
        assert answer.headers.get("content-type") == "application/json", shown
    else:
        assert APP in row.accept, shown
        content_type = answer.headers.get("content-type", "")
        as_read = httpx.Response(
            answer.status,
            headers={"content-type": content_type},
            content=answer.body,
            request=httpx.Request("RAW", stack.url),
        )
        assert_error(as_read, row.statuses)
    assert events.count() == before
    assert api.get("/healthz").status_code == 200, "the API answers after it"
