"""`GET /v1/pi` and `GET /v1/pi/search`: any stored digits by position, and where a string of
digits first occurs in them.

`/v1/pi` answers as the Pi API (pi.delivery) does: the same parameters and defaults, position 0
is the leading 3, and `{"content": "3141..."}`; it allows 1,000,000 digits a request (the Pi API
1,000). Both may be called from any web page (`Access-Control-Allow-Origin: *`): the digits are
public and nothing here changes anything. Digits never change, so an answer for stored digits is
cached for a year; a range not stored yet answers 404, naming the job that would store it.
"""

import asyncio
import json
import re
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import Response

from services.api.pi_text import StoredText
from services.shared.events import Radix
from services.shared.web import ApiError, etag_matches, header

MAX_DIGITS_PER_REQUEST = 1_000_000
DEFAULT_DIGITS = 100  # as the Pi API
MAX_QUERY_DIGITS = 20
MAX_SEARCH_RESULTS = 1_000
DEFAULT_SEARCH_RESULTS = 10
# Searches scanning the digits at once in one process; more wait their turn.
SEARCHES_AT_ONCE = 2

PUBLIC = {"Access-Control-Allow-Origin": "*"}
_FOREVER = {**PUBLIC, "Cache-Control": "public, max-age=31536000, immutable"}
_A_MINUTE = {**PUBLIC, "Cache-Control": "public, max-age=60"}
_WHOLE_NUMBER = re.compile(r"^[0-9]{1,19}$")
_QUERY_PATTERN = {10: re.compile(r"^[0-9]+$"), 16: re.compile(r"^[0-9a-fA-F]+$")}
_RADIX_NAME = {10: "decimal", 16: "hexadecimal"}


@dataclass(frozen=True)
class DigitsRequest:
    start: int
    count: int
    radix: Radix


@dataclass(frozen=True)
class SearchRequest:
    query: str
    limit: int
    radix: Radix


def parse_digits_request(query_string: bytes) -> DigitsRequest:
    params = _single_values(query_string)
    return DigitsRequest(
        start=_whole_number(params, "start", 0, 0, None),
        count=_whole_number(params, "numberOfDigits", DEFAULT_DIGITS, 0, MAX_DIGITS_PER_REQUEST),
        radix=_radix(params),
    )


def parse_search_request(query_string: bytes) -> SearchRequest:
    params = _single_values(query_string)
    radix = _radix(params)
    query = params.get("q", "")
    alphabet = "0-9" if radix == 10 else "0-9 and a-f"
    if not query:
        raise ApiError(400, f"q is required: 1 to {MAX_QUERY_DIGITS} digits ({alphabet})")
    if len(query) > MAX_QUERY_DIGITS:
        raise ApiError(400, f"q may have at most {MAX_QUERY_DIGITS} digits, got {len(query)}")
    if not _QUERY_PATTERN[radix].fullmatch(query):
        raise ApiError(400, f"q must be {_RADIX_NAME[radix]} digits only ({alphabet})")
    limit = _whole_number(params, "limit", DEFAULT_SEARCH_RESULTS, 1, MAX_SEARCH_RESULTS)
    return SearchRequest(query=query.lower(), limit=limit, radix=radix)


def _single_values(query_string: bytes) -> dict[str, str]:
    try:
        fields = parse_qs(query_string.decode("utf-8"), keep_blank_values=True)
    except UnicodeDecodeError:
        raise ApiError(400, "the query string is not valid UTF-8") from None
    for name, values in fields.items():
        if len(values) > 1:
            raise ApiError(400, f"{name[:40]} was given more than once")
    return {name: values[0] for name, values in fields.items()}


def _whole_number(
    params: dict[str, str], name: str, default: int, least: int, most: int | None
) -> int:
    allowed = f"from {least} to {most:,}" if most is not None else f"from {least}"
    text = params.get(name)
    if text is None:
        return default
    if not _WHOLE_NUMBER.fullmatch(text.strip()):
        raise ApiError(400, f"{name} must be a whole number {allowed}, got {text[:40]!r}")
    value = int(text)
    if value < least or (most is not None and value > most):
        raise ApiError(400, f"{name} must be a whole number {allowed}, got {value:,}")
    return value


def _radix(params: dict[str, str]) -> Radix:
    text = params.get("radix", "10").strip()
    if text == "10":
        return 10
    if text == "16":
        return 16
    raise ApiError(400, f"radix must be 10 or 16, got {text[:40]!r}")


def not_stored(wanted_end: int, positions: int, radix: Radix) -> ApiError:
    """The 404 of a range that ends past the stored digits: what is stored, what would store it."""
    kind = _RADIX_NAME[radix]
    held = (
        f"positions 0 to {positions - 1:,} are stored (the 3 and {positions - 1:,} {kind} "
        "digits after the point)"
        if positions
        else f"no {kind} digits are stored yet"
    )
    num = wanted_end - 1  # digits after the point a job must compute to store the range
    radix_field = "" if radix == 10 else "&radix=16"
    return ApiError(
        404,
        f"{held}; a job of num={num:,} would store this range: POST /pi_job num={num}{radix_field}",
        headers={**PUBLIC, "Cache-Control": "no-store"},
    )


async def digits_answer(texts: dict[int, StoredText], asked: DigitsRequest, scope: Any) -> Response:
    text = texts[asked.radix]
    positions = await text.positions()
    end = asked.start + asked.count
    if end > positions:
        raise not_stored(end, positions, asked.radix)
    etag = f'"pi-{asked.radix}-{asked.start}-{asked.count}"'
    headers = {**_FOREVER, "ETag": etag}
    if etag_matches(header(scope, b"if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    body = b'{"content":"' + text.read(asked.start, asked.count) + b'"}'
    return Response(body, media_type="application/json", headers=headers)


class Searches:
    """Runs searches a few at a time (each scans up to all stored digits) and keeps recent
    answers: a search is answered again only while no more digits are stored."""

    def __init__(self, texts: dict[int, StoredText], keep: int = 1_000) -> None:
        self._texts = texts
        self._scanning = asyncio.Semaphore(SEARCHES_AT_ONCE)
        self._answers: OrderedDict[tuple[SearchRequest, int], tuple[bytes, bool]] = OrderedDict()
        self._keep = keep

    async def answer(self, asked: SearchRequest, scope: Any) -> Response:
        text = self._texts[asked.radix]
        positions = await text.positions()
        key = (asked, positions)
        kept = self._answers.get(key)
        if kept is None:
            async with self._scanning:
                kept = await asyncio.to_thread(self._search, text, asked, positions)
            self._answers[key] = kept
            while len(self._answers) > self._keep:
                self._answers.popitem(last=False)
        else:
            self._answers.move_to_end(key)
        body, final = kept
        # The first `limit` positions found stay the first however many digits are stored later.
        etag = f'"search-{asked.radix}-{asked.query}-{asked.limit}-{"all" if final else positions}"'
        headers = {**(_FOREVER if final else _A_MINUTE), "ETag": etag}
        if etag_matches(header(scope, b"if-none-match"), etag):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @staticmethod
    def _search(text: StoredText, asked: SearchRequest, positions: int) -> tuple[bytes, bool]:
        found, searched = text.find(asked.query.encode("ascii"), asked.limit, positions)
        body = {
            "success": True,
            "q": asked.query,
            "radix": asked.radix,
            "positions": found,
            "digits_searched": searched,
            "digits_stored": positions,
        }
        return _json(body), len(found) == asked.limit


def _json(document: dict[str, Any]) -> bytes:
    return json.dumps(document, separators=(",", ":")).encode()


def _parameter(name: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "description": description,
        "schema": schema,
    }


_RADIX_PARAMETER = _parameter("radix", "10 (default) or 16", {"type": "integer", "enum": [10, 16]})
_DIGITS_PARAMETERS = [
    _parameter(
        "start", "position of the first digit; 0 is the 3", {"type": "integer", "minimum": 0}
    ),
    _parameter(
        "numberOfDigits",
        f"how many digits (default {DEFAULT_DIGITS})",
        {"type": "integer", "minimum": 0, "maximum": MAX_DIGITS_PER_REQUEST},
    ),
    _RADIX_PARAMETER,
]
_SEARCH_PARAMETERS = [
    {
        **_parameter("q", "the digits to find", {"type": "string", "maxLength": MAX_QUERY_DIGITS}),
        "required": True,
    },
    _parameter(
        "limit",
        f"how many positions at most (default {DEFAULT_SEARCH_RESULTS})",
        {"type": "integer", "minimum": 1, "maximum": MAX_SEARCH_RESULTS},
    ),
    _RADIX_PARAMETER,
]


def add_digit_routes(app: FastAPI, texts: dict[int, StoredText]) -> None:
    """Declares /v1/pi and /v1/pi/search on `app` (they read their parameters themselves, to
    answer every form of bad input with a 400 that says what is allowed)."""
    searches = Searches(texts)

    @app.get("/v1/pi", openapi_extra={"parameters": _DIGITS_PARAMETERS}, tags=["digits"])
    async def digits(request: Request) -> Response:
        """Digits of pi at any stored position, as the Pi API answers: {"content": "3141..."}."""
        try:
            asked = parse_digits_request(request.scope["query_string"])
            return await digits_answer(texts, asked, request.scope)
        except ApiError as error:
            error.headers = {**PUBLIC, **error.headers}
            raise

    @app.get("/v1/pi/search", openapi_extra={"parameters": _SEARCH_PARAMETERS}, tags=["digits"])
    async def search(request: Request) -> Response:
        """The first positions where a string of digits occurs in the stored digits."""
        try:
            asked = parse_search_request(request.scope["query_string"])
            return await searches.answer(asked, request.scope)
        except ApiError as error:
            error.headers = {**PUBLIC, **error.headers}
            raise
