"""Bad input to the public address, served in this process: a 4xx with the JSON error shape, and
nothing published.

The app runs as its processes run it (the hot paths, the middleware, its lifespan), with an
in-memory event log that records every event published and a real SQLite view. Requests too
malformed for an HTTP client to send, and the HTTP server's own refusals, are in
tests/e2e/test_bad_input.py against real processes.
"""

import base64
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from services.shared.events import JobCompleted, JobRequested
from services.shared.job_ids import new_job_id
from tests.in_process_api import InMemoryEventLog, InProcessApi, in_process_api
from tests.refusals import (
    FORM,
    JSON,
    MAX_BODY,
    MAX_NUM,
    MULTIPART,
    UNKNOWN_ID,
    assert_error,
    multipart,
)


@pytest.fixture(scope="module")
async def served(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[InProcessApi]:
    """One app for the module, with one finished job (ids next to a real one are tried)."""
    async with in_process_api(tmp_path_factory.mktemp("api")) as served:
        yield served


@pytest.fixture(scope="module")
async def finished_job(served: InProcessApi) -> str:
    """A complete job, published as the calculator would: its request, then its completion."""
    job_id = new_job_id()
    await served.log.publish(JobRequested(job_id=job_id, num=12))
    await served.log.publish(
        JobCompleted(job_id=job_id, num=12, digits_source="computed", compute_seconds=0.1)
    )
    return job_id


@pytest.fixture
def api(served: InProcessApi) -> httpx.AsyncClient:
    return served.client


@pytest.fixture
def log(served: InProcessApi, finished_job: str) -> InMemoryEventLog:
    """What the app published (after `finished_job`: only a request could add to it)."""
    return served.log


@pytest.fixture
def downloader(served: InProcessApi) -> httpx.AsyncClient:
    """The downloader's app (it is not public, but answers on a port of its own)."""
    return served.downloader


# --- POST /pi_job: bodies ----------------------------------------------------------------------


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
    _row("multipart-zero", multipart((b'name="num"', b"0")), MULTIPART, 422),
    _row("multipart-word", multipart((b'name="num"', b"twelve")), MULTIPART, 422),
    _row("multipart-above-max", multipart((b'name="num"', b"1000000001")), MULTIPART, 422),
    _row("multipart-invalid-utf8", multipart((b'name="num"', b"\xff")), MULTIPART, 422),
    _row("multipart-nul-byte", multipart((b'name="num"', b"1\x002")), MULTIPART, 422),
    _row("multipart-no-num", multipart((b'name="digits"', b"12")), MULTIPART, 422),
    _row("multipart-no-parts", b"--BOUNDARY--\r\n", MULTIPART, 422),
    _row("multipart-empty-body", b"", MULTIPART, 422),
    _row(
        "multipart-num-as-file",
        multipart((b'name="num"; filename="num.txt"', b"12")),
        MULTIPART,
        400,
    ),
    _row(
        "multipart-11-fields",
        multipart(*[(b'name="f%d"' % i, b"x") for i in range(10)], (b'name="num"', b"12")),
        MULTIPART,
        400,
    ),
    _row(
        "multipart-no-content-disposition",
        b"--BOUNDARY\r\n\r\n12\r\n--BOUNDARY--\r\n",
        MULTIPART,
        400,
    ),
    _row("multipart-no-boundary", multipart((b'name="num"', b"12")), "multipart/form-data", 400),
    _row("multipart-wrong-boundary", multipart((b'name="num"', b"12")), MULTIPART + "X", 400),
    _row("multipart-garbage", b"garbage", MULTIPART, 400),
    _row(
        "multipart-over-16KiB",
        multipart((b'name="pad"', b"a" * MAX_BODY), (b'name="num"', b"12")),
        MULTIPART,
        413,
    ),
    # media types the API does not read
    _row("text-plain", b"num=12", "text/plain", 415),
    _row("xml", b"<num>12</num>", "application/xml", 415),
    _row("json-api", b'{"num": 12}', "application/vnd.api+json", 415),
    _row("multipart-mixed", multipart((b'name="num"', b"12")), "multipart/mixed", 415),
    _row("octet-stream", b"\x00\x00\x00\x0c", "application/octet-stream", 415),
    _row("non-ascii-content-type", b"num=12", b"\xff\xfe/\xe9", 415),
]


@pytest.mark.parametrize(("content", "content_type", "statuses"), BAD_BODIES)
async def test_bad_submissions_are_refused_and_write_nothing(
    api: httpx.AsyncClient,
    log: InMemoryEventLog,
    content: bytes,
    content_type: str | bytes | None,
    statuses: frozenset[int],
) -> None:
    headers: dict[bytes, bytes] = {}
    if content_type is not None:
        headers[b"content-type"] = (
            content_type if isinstance(content_type, bytes) else content_type.encode()
        )
    before = len(log.published)
    assert_error(await api.post("/pi_job", content=content, headers=headers), statuses)
    assert len(log.published) == before


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"num=%d" % (MAX_NUM + 1), FORM),
        (b'{"num": %d}' % (MAX_NUM + 1), JSON),
        (multipart((b'name="num"', b"%d" % (MAX_NUM + 1))), MULTIPART),
        (b"num=" + b"9" * 20, FORM),
    ],
    ids=["form", "json", "multipart", "twenty-nines"],
)
async def test_work_above_the_maximum_is_refused_up_front_with_the_limit(
    api: httpx.AsyncClient, log: InMemoryEventLog, content: bytes, content_type: str
) -> None:
    before = len(log.published)
    response = await api.post("/pi_job", content=content, headers={"content-type": content_type})
    assert_error(response, {422})
    assert f"1 to {MAX_NUM}" in response.json()["error"]
    assert len(log.published) == before


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
async def test_bad_idempotency_keys_are_refused_before_the_job_is_taken(
    api: httpx.AsyncClient, log: InMemoryEventLog, key: bytes
) -> None:
    # A valid num: only the key is wrong, and it alone must stop the job.
    before = len(log.published)
    response = await api.post(
        "/pi_job",
        content=b"num=12",
        headers={b"content-type": FORM.encode(), b"idempotency-key": key},
    )
    assert_error(response, {400})
    assert len(log.published) == before


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
async def test_ids_that_are_not_jobs_answer_404_and_change_nothing(
    api: httpx.AsyncClient, log: InMemoryEventLog, method: str, route: str, job_id: str
) -> None:
    before = len(log.published)
    assert_error(await api.request(method, route.format(job_id)), {404})
    assert len(log.published) == before


@pytest.mark.parametrize("job_id", BAD_IDS)
async def test_the_downloader_refuses_the_same_ids_on_its_own_port(
    downloader: httpx.AsyncClient, job_id: str
) -> None:
    assert_error(await downloader.get(f"/download_pi_job/{job_id}"), {404})


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
async def test_near_misses_of_a_real_id_are_not_found(
    api: httpx.AsyncClient,
    log: InMemoryEventLog,
    finished_job: str,
    method: str,
    route: str,
    near_miss: Callable[[str], str],
) -> None:
    before = len(log.published)
    assert_error(await api.request(method, route.format(near_miss(finished_job))), {404})
    assert len(log.published) == before


async def test_cancelling_a_finished_job_is_a_conflict_with_the_error_shape(
    api: httpx.AsyncClient, log: InMemoryEventLog, finished_job: str
) -> None:
    before = len(log.published)
    assert_error(await api.delete(f"/pi_job/{finished_job}"), {409})
    assert len(log.published) == before


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
async def test_bad_listing_queries_are_refused(
    api: httpx.AsyncClient, query: str, status: int
) -> None:
    assert_error(await api.get(f"/pi_jobs?{query}"), {status})


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
async def test_unsupported_methods_answer_405_and_change_nothing(
    api: httpx.AsyncClient, log: InMemoryEventLog, method: str, path: str
) -> None:
    before = len(log.published)
    assert_error(await api.request(method, path, content=b"num=12"), {405})
    assert len(log.published) == before


async def test_head_is_not_served_and_says_so_without_a_body(api: httpx.AsyncClient) -> None:
    response = await api.head(f"/pi_job/{UNKNOWN_ID}")
    assert response.status_code == 405 and response.content == b""
