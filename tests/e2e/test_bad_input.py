"""Bad input at every edge of the public address: a 4xx with the JSON error shape, nothing written.

Raw HTTP against all services as real processes: httpx with `content=` bytes and explicit headers,
and a raw socket for requests too malformed for an HTTP client to send. A request that is not
valid HTTP/1.1 is refused by the HTTP server (uvicorn, h11) before it reaches the app: that answer
is a 400 with a plain-text body, and those rows say so. Every POST, and every other call that
could change something, is checked against the events topic: its end offsets must not move.
"""

import asyncio
import base64
import socket
import uuid
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from deploy.local_stack import LocalStack
from services.shared.settings import KafkaSettings
from tests.e2e.conftest import stop_stack
from tests.e2e.helpers import submit, wait_complete

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MAX_NUM = 1_000_000_000  # PI_JOBS_MAX_NUM's default: the stack runs with it
MAX_BODY = 16 * 1024  # services.api.submission.MAX_BODY_BYTES
UNKNOWN_ID = "ffffffffffffffffffffffffffffffff"  # a well-formed job id no job has
# uvicorn's answer to a request h11 cannot parse (uvicorn/protocols/http/h11_impl.py).
# A small submission quota, so a flood is cheap to provoke: 2 at once, then one per 100 s.
QUOTA_BURST = 2
QUOTA_ENV = {"PI_JOBS_SUBMISSION_BURST": str(QUOTA_BURST), "PI_JOBS_SUBMISSIONS_PER_SECOND": "0.01"}


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """conftest's stack, but with a small submission quota: a 429 takes two jobs, not 200."""
    running = LocalStack.on_free_ports(
        kafka_bootstrap,
        tmp_path_factory.mktemp("stack"),
        topic_prefix=f"e2e-{uuid.uuid4().hex[:12]}",
        log_to_files=True,
        extra_env=QUOTA_ENV,
    )
    running.start()
    try:
        running.wait_ready(timeout=120)
        yield running
    finally:
        stop_stack(running, show_logs=True)


# --- what every refusal looks like ------------------------------------------------------------


def assert_error(response: httpx.Response, statuses: Collection[int]) -> None:
    """A refusal: one of `statuses`, body exactly {"success": false, "error": "<message>"}."""
    request = f"{response.request.method} {response.request.url.raw_path!r}"
    shown = f"{request} -> {response.status_code} {response.text[:300]!r}"
    assert response.status_code in statuses, shown
    assert response.headers.get("content-type", "").startswith("application/json"), shown
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"success", "error"}, shown
    assert body["success"] is False, shown
    assert isinstance(body["error"], str) and body["error"].strip(), shown


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
def finished_job(api: httpx.Client) -> str:
    """One complete job, so ids next to a real one can be tried; its events are all written."""
    job_id = submit(api, 12)
    wait_complete(api, job_id)
    return job_id


@pytest.fixture(scope="module")
def events(stack: LocalStack, finished_job: str) -> Iterator[EventCounter]:
    # After `finished_job`: no job is running, so only a request could move the offsets.
    counter = EventCounter(stack)
    try:
        yield counter
    finally:
        counter.close()


# --- POST /pi_job: bodies ----------------------------------------------------------------------


def _multipart(*parts: tuple[bytes, bytes], boundary: bytes = b"BOUNDARY") -> bytes:
    body = b"".join(
        b"--"
        + boundary
        + b"\r\nContent-Disposition: form-data; "
        + disposition
        + b"\r\n\r\n"
        + value
        + b"\r\n"
        for disposition, value in parts
    )
    return body + b"--" + boundary + b"--\r\n"


MULTIPART = "multipart/form-data; boundary=BOUNDARY"


def _row(
    name: str,
    content: bytes,
    content_type: str | bytes | None,
    *statuses: int,
    marks: Any = (),
) -> Any:
    return pytest.param(content, content_type, frozenset(statuses), id=name, marks=marks)


BAD_BODIES = [
    # num as a form field
    _row("form-zero", b"num=0", FORM, 422),
    _row("form-negative", b"num=-1", FORM, 422),
    _row("form-negative-zero", b"num=-0", FORM, 422),
    _row("form-plus-sign", b"num=%2B12", FORM, 422),
    _row("form-fraction", b"num=1.5", FORM, 422),
    _row("form-whole-fraction", b"num=12.0", FORM, 422),
    _row("form-exponent", b"num=1e3", FORM, 422),
    _row("form-hex", b"num=0x10", FORM, 422),
    _row("form-word", b"num=twelve", FORM, 422),
    _row("form-empty-value", b"num=", FORM, 422),
    _row("form-no-num", b"digits=12", FORM, 422),
    _row("form-empty-body", b"", FORM, 422),
    _row("form-num-twice", b"num=12&num=13", FORM, 422),
    _row("form-only-separators", b"&&&===&", FORM, 422),
    _row("form-above-max", b"num=%d" % (MAX_NUM + 1), FORM, 422),
    _row("form-huge", b"num=" + b"9" * 30, FORM, 422),
    _row("form-4301-digits", b"num=" + b"9" * 4301, FORM, 422),  # past int()'s digit limit
    _row("form-10000-digits", b"num=" + b"9" * 10_000, FORM, 422),
    _row("form-arabic-indic-digits", "num=١٢".encode(), FORM, 422),
    _row("form-arabic-indic-digits-encoded", b"num=%D9%A1%D9%A2", FORM, 422),
    _row("form-fullwidth-digits", b"num=%EF%BC%91%EF%BC%92", FORM, 422),
    _row("form-devanagari-digits", "num=१२".encode(), FORM, 422),
    _row("form-superscript-two", "num=²".encode(), FORM, 422),
    _row("form-invalid-utf8", b"num=\xff\xfe", FORM, 400),
    _row("form-encoded-invalid-utf8", b"num=%ff", FORM, 422),
    _row("form-nul-byte", b"num=1\x002", FORM, 422),
    _row("form-encoded-nul", b"num=1%002", FORM, 422),
    _row("form-bad-percent-escape", b"num=%zz", FORM, 422),
    _row("form-4000-fields", b"a=1&" * 4000, FORM, 422),
    _row("form-exactly-16KiB", b"num=0&pad=" + b"a" * (MAX_BODY - 10), FORM, 422),
    _row("form-16KiB-plus-one", b"num=12&pad=" + b"a" * (MAX_BODY - 10), FORM, 413),
    _row("form-64KiB", b"num=12&pad=" + b"a" * (4 * MAX_BODY), FORM, 413),
    _row("no-content-type-zero", b"num=0", None, 422),
    _row("empty-content-type-zero", b"num=0", "", 422),
    # num as JSON
    _row("json-zero", b'{"num": 0}', JSON, 422),
    _row("json-negative", b'{"num": -3}', JSON, 422),
    _row("json-negative-zero", b'{"num": -0}', JSON, 422),
    _row("json-fraction", b'{"num": 1.5}', JSON, 422),
    _row("json-whole-float", b'{"num": 12.0}', JSON, 422),
    _row("json-exponent", b'{"num": 1e3}', JSON, 422),
    _row("json-overflowing-float", b'{"num": 1e400}', JSON, 422),
    _row("json-nan", b'{"num": NaN}', JSON, 422),
    _row("json-infinity", b'{"num": Infinity}', JSON, 422),
    _row("json-minus-infinity", b'{"num": -Infinity}', JSON, 422),
    _row("json-true", b'{"num": true}', JSON, 422),
    _row("json-false", b'{"num": false}', JSON, 422),
    _row("json-null", b'{"num": null}', JSON, 422),
    _row("json-word", b'{"num": "twelve"}', JSON, 422),
    _row("json-empty-string", b'{"num": ""}', JSON, 422),
    _row("json-arabic-indic-digits", '{"num": "١٢"}'.encode(), JSON, 422),
    _row("json-fullwidth-digits", b'{"num": "\\uff11\\uff12"}', JSON, 422),
    _row("json-lone-surrogate", b'{"num": "\\ud800"}', JSON, 422),
    _row("json-list", b'{"num": [12]}', JSON, 422),
    _row("json-object", b'{"num": {"num": 12}}', JSON, 422),
    _row("json-missing-num", b"{}", JSON, 422),
    _row("json-other-key", b'{"digits": 12}', JSON, 422),
    _row("json-top-level-list", b"[12]", JSON, 422),
    _row("json-top-level-number", b"12", JSON, 422),
    _row("json-top-level-string", b'"12"', JSON, 422),
    _row("json-top-level-null", b"null", JSON, 422),
    _row("json-duplicate-key-last-bad", b'{"num": 12, "num": 0}', JSON, 422),
    _row("json-above-max", b'{"num": %d}' % (MAX_NUM + 1), JSON, 422),
    _row("json-huge", b'{"num": ' + b"9" * 30 + b"}", JSON, 422),
    _row("json-huge-string", b'{"num": "' + b"9" * 30 + b'"}', JSON, 422),
    # 4301 digits is valid JSON, but past int()'s digit limit: json.loads raises ValueError.
    _row("json-4301-digit-number", b'{"num": ' + b"9" * 4301 + b"}", JSON, 400, 422),
    _row("json-long-fraction", b'{"num": 0.' + b"9" * 10_000 + b"}", JSON, 422),
    _row("json-truncated", b'{"num": ', JSON, 400),
    _row("json-unquoted-key", b"{num: 12}", JSON, 400),
    _row("json-single-quotes", b"{'num': 12}", JSON, 400),
    _row("json-trailing-garbage", b'{"num": 12} x', JSON, 400),
    _row("json-empty-body", b"", JSON, 400),
    _row("json-invalid-utf8", b'{"num": "\xff\xfe"}', JSON, 400),
    _row("json-nul-byte", b'{"num": 12}\x00', JSON, 400),
    _row("json-unclosed-brackets", b"[" * 5000, JSON, 400),
    _row("json-1000-deep", b"[" * 1000 + b"]" * 1000, JSON, 400, 422),
    _row("json-utf16-zero", '{"num": 0}'.encode("utf-16"), JSON + "; charset=utf-16", 422),
    _row("json-bom-zero", b'\xef\xbb\xbf{"num": 0}', JSON, 422),
    _row("json-uppercase-media-type", b'{"num": 0}', "APPLICATION/JSON", 422),
    _row("json-deep-list", b"[" * 8000 + b"]" * 8000, JSON, 400, 422),
    _row(
        "json-deep-object",
        b'{"num":' * 2000 + b"1" + b"}" * 2000,
        JSON,
        400,
        422,
    ),
    _row("json-over-16KiB", b'{"num": 12, "p": "' + b"a" * MAX_BODY + b'"}', JSON, 413),
    # num as a multipart field
    _row("multipart-zero", _multipart((b'name="num"', b"0")), MULTIPART, 422),
    _row("multipart-word", _multipart((b'name="num"', b"twelve")), MULTIPART, 422),
    _row("multipart-above-max", _multipart((b'name="num"', b"%d" % (MAX_NUM + 1))), MULTIPART, 422),
    _row("multipart-invalid-utf8", _multipart((b'name="num"', b"\xff")), MULTIPART, 422),
    _row("multipart-nul-byte", _multipart((b'name="num"', b"1\x002")), MULTIPART, 422),
    _row("multipart-no-num", _multipart((b'name="digits"', b"12")), MULTIPART, 422),
    _row("multipart-no-parts", b"--BOUNDARY--\r\n", MULTIPART, 422),
    _row("multipart-empty-body", b"", MULTIPART, 422),
    _row(
        "multipart-num-as-file",
        _multipart((b'name="num"; filename="num.txt"', b"12")),
        MULTIPART,
        400,
    ),
    _row(
        "multipart-11-fields",
        _multipart(*[(b'name="f%d"' % i, b"x") for i in range(10)], (b'name="num"', b"12")),
        MULTIPART,
        400,
    ),
    _row(
        "multipart-no-content-disposition",
        b"--BOUNDARY\r\n\r\n12\r\n--BOUNDARY--\r\n",
        MULTIPART,
        400,
    ),
    _row("multipart-no-boundary", _multipart((b'name="num"', b"12")), "multipart/form-data", 400),
    _row("multipart-wrong-boundary", _multipart((b'name="num"', b"12")), MULTIPART + "X", 400),
    _row("multipart-garbage", b"garbage", MULTIPART, 400),
    _row(
        "multipart-over-16KiB",
        _multipart((b'name="pad"', b"a" * MAX_BODY), (b'name="num"', b"12")),
        MULTIPART,
        413,
    ),
    # media types the API does not read
    _row("text-plain", b"num=12", "text/plain", 415),
    _row("xml", b"<num>12</num>", "application/xml", 415),
    _row("json-api", b'{"num": 12}', "application/vnd.api+json", 415),
    _row("multipart-mixed", _multipart((b'name="num"', b"12")), "multipart/mixed", 415),
    _row("octet-stream", b"\x00\x00\x00\x0c", "application/octet-stream", 415),
    _row("non-ascii-content-type", b"num=12", b"\xff\xfe/\xe9", 415),
]


@pytest.mark.parametrize(("content", "content_type", "statuses"), BAD_BODIES)
def test_bad_submissions_are_refused_and_write_nothing(
    api: httpx.Client,
    events: EventCounter,
    content: bytes,
    content_type: str | bytes | None,
    statuses: frozenset[int],
) -> None:
    headers: dict[bytes, bytes] = {}
    if content_type is not None:
        headers[b"content-type"] = (
            content_type if isinstance(content_type, bytes) else content_type.encode()
        )
    before = events.count()
    assert_error(api.post("/pi_job", content=content, headers=headers), statuses)
    assert events.count() == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"num=%d" % (MAX_NUM + 1), FORM),
        (b'{"num": %d}' % (MAX_NUM + 1), JSON),
        (_multipart((b'name="num"', b"%d" % (MAX_NUM + 1))), MULTIPART),
        (b"num=" + b"9" * 20, FORM),
    ],
    ids=["form", "json", "multipart", "twenty-nines"],
)
def test_work_above_the_maximum_is_refused_up_front_with_the_limit(
    api: httpx.Client, events: EventCounter, content: bytes, content_type: str
) -> None:
    before = events.count()
    response = api.post("/pi_job", content=content, headers={"content-type": content_type})
    assert_error(response, {422})
    assert f"1 to {MAX_NUM}" in response.json()["error"]
    assert events.count() == before


def test_a_flood_from_one_client_is_refused_up_front_with_429(
    api: httpx.Client, events: EventCounter
) -> None:
    # Valid submissions until the quota says no (each waited for: then nothing is in flight).
    for _ in range(QUOTA_BURST + 1):
        before = events.count()
        response = api.post("/pi_job", data={"num": "12"})
        if response.status_code == 200:
            wait_complete(api, response.json()["job_id"])
            continue
        assert_error(response, {429})
        assert int(response.headers["retry-after"]) >= 1
        assert events.count() == before
        return
    pytest.fail(f"{QUOTA_BURST + 1} submissions in a row were all taken")


# --- POST /pi_job: Idempotency-Key ------------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"k" * 201, id="201-chars"),
        pytest.param(b"k" * 1000, id="1000-chars"),
        pytest.param(b"order 4711", id="space"),
        pytest.param(b"order\t4711", id="tab"),
        pytest.param(b"order\x014711", id="control-char-01"),
        pytest.param(b"order\x1b4711", id="escape"),
        pytest.param(b"order\x7f4711", id="delete-char"),
        pytest.param("заказ-4711".encode(), id="non-ascii-utf8"),
        pytest.param("ordér".encode("latin-1"), id="non-ascii-latin1"),
        pytest.param(b"\xff\xfe", id="invalid-utf8"),
        pytest.param("🥧".encode(), id="emoji"),
    ],
)
def test_bad_idempotency_keys_are_refused_before_the_job_is_taken(
    api: httpx.Client, events: EventCounter, key: bytes
) -> None:
    # A valid num: only the key is wrong, and it alone must stop the job.
    before = events.count()
    response = api.post(
        "/pi_job",
        content=b"num=12",
        headers={b"content-type": FORM.encode(), b"idempotency-key": key},
    )
    assert_error(response, {400})
    assert events.count() == before


# --- ids that are not ids ---------------------------------------------------------------------

ID_ROUTES = [
    pytest.param("GET", "/pi_job/{}", id="GET-status"),
    pytest.param("DELETE", "/pi_job/{}", id="DELETE"),
    pytest.param("GET", "/pi_job/{}/events", id="GET-events"),
    pytest.param("GET", "/download_pi_job/{}", id="GET-download"),
]

# Path segments exactly as sent (already percent-encoded where needed).
BAD_IDS = [
    pytest.param("1", id="one"),
    pytest.param("0", id="zero"),
    pytest.param("-1", id="negative"),
    pytest.param("null", id="null"),
    pytest.param("undefined", id="undefined"),
    pytest.param("0123456789abcdef0123456789abcde", id="31-hex"),
    pytest.param("0123456789abcdef0123456789abcdef0", id="33-hex"),
    pytest.param("0123456789ABCDEF0123456789ABCDEF", id="uppercase-hex"),
    pytest.param("0123456789abcdef0123456789abcdeg", id="not-hex"),
    pytest.param(UNKNOWN_ID, id="unknown-but-well-formed"),
    pytest.param("%2e%2e%2f%2e%2e%2fetc%2fpasswd", id="encoded-traversal"),
    pytest.param("%2E%2E%2F%2E%2E%2Fetc%2Fpasswd", id="encoded-traversal-upper"),
    pytest.param("..%2f..%2fetc%2fpasswd", id="dots-and-encoded-slashes"),
    pytest.param("%2e%2e", id="encoded-dot-dot"),
    pytest.param("%252e%252e%252f%252e%252e%252fetc%252fpasswd", id="double-encoded-traversal"),
    pytest.param("..%5c..%5cwindows%5cwin.ini", id="backslash-traversal"),
    pytest.param("%c0%ae%c0%ae%c0%af", id="overlong-utf8-traversal"),
    pytest.param("%00", id="nul"),
    pytest.param(UNKNOWN_ID + "%00", id="id-then-nul"),
    pytest.param("%0d%0aSet-Cookie:%20x=1", id="crlf-injection"),
    pytest.param("%20", id="space"),
    pytest.param("%ff%fe", id="invalid-utf8"),
    pytest.param("%zz", id="bad-percent-escape"),
    pytest.param("%C3%BCn%C3%AFc%C3%B6d%C3%A9", id="unicode-letters"),
    pytest.param("%EF%BC%90" * 32, id="fullwidth-zeros"),
    pytest.param("%F0%9F%A5%A7", id="emoji"),
    pytest.param("%E2%80%AE" + UNKNOWN_ID, id="right-to-left-override"),
    pytest.param("'%20OR%20'1'='1", id="sql-ish"),
    pytest.param("%7B%7Bjob_id%7D%7D", id="template"),
    pytest.param("*", id="star"),
    pytest.param("a" * 10_000, id="10000-chars"),
]


@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
@pytest.mark.parametrize("job_id", BAD_IDS)
def test_ids_that_are_not_jobs_answer_404_and_change_nothing(
    api: httpx.Client, events: EventCounter, method: str, route: str, job_id: str
) -> None:
    before = events.count()
    assert_error(api.request(method, route.format(job_id)), {404})
    assert events.count() == before


@pytest.fixture(scope="module")
def downloader(stack: LocalStack) -> Iterator[httpx.Client]:
    """The downloader is not public, but it answers on a port of its own."""
    with httpx.Client(base_url=f"http://127.0.0.1:{stack.downloader_port}", timeout=60) as http:
        yield http


@pytest.mark.parametrize("job_id", BAD_IDS)
def test_the_downloader_refuses_the_same_ids_on_its_own_port(
    downloader: httpx.Client, job_id: str
) -> None:
    assert_error(downloader.get(f"/download_pi_job/{job_id}"), {404})


NEAR_MISSES = [
    pytest.param(lambda real: real + "0", id="one-char-more"),
    pytest.param(lambda real: real[:-1], id="one-char-less"),
    pytest.param(lambda real: real.upper(), id="uppercase"),
    pytest.param(lambda real: real + "%00", id="then-nul"),
    pytest.param(lambda real: real + "%20", id="then-space"),
    pytest.param(lambda real: "%20" + real, id="space-first"),
    pytest.param(lambda real: real + "%2f..%2f..%2fetc%2fpasswd", id="then-encoded-traversal"),
    pytest.param(lambda real: "..%2f" + real, id="encoded-traversal-first"),
]


@pytest.mark.parametrize(("method", "route"), ID_ROUTES)
@pytest.mark.parametrize("near_miss", NEAR_MISSES)
def test_near_misses_of_a_real_id_are_not_found(
    api: httpx.Client,
    events: EventCounter,
    finished_job: str,
    method: str,
    route: str,
    near_miss: Callable[[str], str],
) -> None:
    before = events.count()
    assert_error(api.request(method, route.format(near_miss(finished_job))), {404})
    assert events.count() == before


def test_cancelling_a_finished_job_is_a_conflict_with_the_error_shape(
    api: httpx.Client, events: EventCounter, finished_job: str
) -> None:
    before = events.count()
    assert_error(api.delete(f"/pi_job/{finished_job}"), {409})
    assert events.count() == before


# --- GET /pi_jobs: query strings --------------------------------------------------------------


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


BAD_QUERIES = [
    pytest.param("status=bogus", 422, id="status-unknown"),
    pytest.param("status=", 422, id="status-empty"),
    pytest.param("status=COMPLETE", 422, id="status-uppercase"),
    pytest.param("status=complete%00", 422, id="status-nul"),
    pytest.param("status=%C3%BC", 422, id="status-unicode"),
    pytest.param("status=" + "x" * 5000, 422, id="status-long"),
    pytest.param("limit=0", 422, id="limit-zero"),
    pytest.param("limit=-1", 422, id="limit-negative"),
    pytest.param("limit=101", 422, id="limit-above-100"),
    pytest.param("limit=1.5", 422, id="limit-fraction"),
    pytest.param("limit=1e2", 422, id="limit-exponent"),
    pytest.param("limit=0x10", 422, id="limit-hex"),
    pytest.param("limit=abc", 422, id="limit-word"),
    pytest.param("limit=", 422, id="limit-empty"),
    pytest.param("limit=" + "9" * 30, 422, id="limit-huge"),
    pytest.param("limit=" + "9" * 5000, 422, id="limit-5000-digits"),
    pytest.param("limit=%EF%BC%91", 422, id="limit-fullwidth-one"),
    pytest.param("limit=%D9%A1", 422, id="limit-arabic-indic-one"),
    pytest.param("limit=%00", 422, id="limit-nul"),
    pytest.param("cursor=a", 400, id="cursor-one-char"),
    pytest.param("cursor==", 400, id="cursor-padding-only"),
    pytest.param("cursor=%ff%fe", 400, id="cursor-invalid-utf8"),
    pytest.param("cursor=!!!!", 400, id="cursor-not-base64"),
    pytest.param("cursor=__79", 400, id="cursor-decodes-to-invalid-utf8"),
    pytest.param("cursor=" + "A" * 10_000, 400, id="cursor-10000-chars"),
    pytest.param("cursor=" + _cursor("no-colon"), 400, id="cursor-no-colon"),
    pytest.param("cursor=" + _cursor("1:2:3"), 400, id="cursor-two-colons"),
    pytest.param("cursor=" + _cursor(f"x:{UNKNOWN_ID}"), 400, id="cursor-not-a-number"),
    pytest.param(
        "cursor=" + _cursor(f"{2**63}:{UNKNOWN_ID}"),
        400,
        id="cursor-past-64-bits",
    ),
    pytest.param(
        "cursor=" + _cursor(f"{-(2**63) - 1}:{UNKNOWN_ID}"),
        400,
        id="cursor-below-64-bits",
    ),
    pytest.param("cursor=" + _cursor("9" * 30 + ":abc"), 400, id="cursor-huge"),
    pytest.param("cursor=" + _cursor("9" * 5000 + ":abc"), 400, id="cursor-5000-digits"),
]


@pytest.mark.parametrize(("query", "status"), BAD_QUERIES)
def test_bad_listing_queries_are_refused(api: httpx.Client, query: str, status: int) -> None:
    assert_error(api.get(f"/pi_jobs?{query}"), {status})


# --- methods ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/pi_job"),
        ("PUT", "/pi_job"),
        ("PATCH", "/pi_job"),
        ("DELETE", "/pi_job"),
        ("OPTIONS", "/pi_job"),
        ("TRACE", "/pi_job"),
        ("POST", f"/pi_job/{UNKNOWN_ID}"),
        ("PUT", f"/pi_job/{UNKNOWN_ID}"),
        ("PATCH", f"/pi_job/{UNKNOWN_ID}"),
        ("POST", f"/pi_job/{UNKNOWN_ID}/events"),
        ("DELETE", f"/pi_job/{UNKNOWN_ID}/events"),
        ("POST", "/pi_jobs"),
        ("DELETE", "/pi_jobs"),
        ("POST", f"/download_pi_job/{UNKNOWN_ID}"),
        ("DELETE", f"/download_pi_job/{UNKNOWN_ID}"),
        ("POST", "/healthz"),
        ("POST", "/readyz"),
        ("POST", "/metrics"),
        ("DELETE", "/metrics"),
    ],
)
def test_unsupported_methods_answer_405_and_change_nothing(
    api: httpx.Client, events: EventCounter, method: str, path: str
) -> None:
    before = events.count()
    assert_error(api.request(method, path, content=b"num=12"), {405})
    assert events.count() == before


def test_head_is_not_served_and_says_so_without_a_body(api: httpx.Client) -> None:
    response = api.head(f"/pi_job/{UNKNOWN_ID}")
    assert response.status_code == 405 and response.content == b""


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
_BIG_MULTIPART = _multipart((b'name="pad"', b"a" * (4 * MAX_BODY)), (b'name="num"', b"0"))

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
