"""/v1/pi and /v1/pi/search, in-process over ASGI, on a view holding digits from mpmath."""

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from services.api.pi_digits import MAX_DIGITS_PER_REQUEST, add_digit_routes
from services.api.pi_text import StoredText
from services.shared.events import DIGITS_PER_CHUNK, Radix
from services.shared.web import install_error_handlers
from tests.support import PI_API_FIRST_100_HEX, reference_pi_hex, reference_pi_text

DECIMALS = 3 * DIGITS_PER_CHUNK
HEX_DIGITS = 2 * DIGITS_PER_CHUNK
PI_TEXT = "3" + reference_pi_text(DECIMALS)[2:]  # position 0 is the 3
PI_HEX = reference_pi_hex(HEX_DIGITS)


class DigitsView:
    """The view's digit reads, over digits held in memory (whole chunks, as the view has)."""

    reads_wait_on_network = False

    def __init__(self, stored: dict[int, str]) -> None:
        self.stored = stored  # radix -> the digits after the point
        self.reads = 0

    def stored_digits(self, radix: Radix = 10) -> int:
        return len(self.stored.get(radix, ""))

    def read_digits(self, start: int, count: int, radix: Radix = 10) -> str:
        self.reads += 1
        assert start + count <= self.stored_digits(radix)
        return self.stored[radix][start : start + count]


@pytest.fixture
def view() -> DigitsView:
    return DigitsView({10: PI_TEXT[1:], 16: PI_HEX[1:]})


@pytest.fixture
async def client(view: DigitsView, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    install_error_handlers(app)
    add_digit_routes(app, {radix: StoredText(tmp_path, radix, view) for radix in (10, 16)})
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_the_default_answer_is_the_pi_apis_first_100_digits(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/v1/pi")
    assert answer.status_code == 200
    assert answer.json() == {"content": PI_TEXT[:100]}
    assert answer.headers["access-control-allow-origin"] == "*"
    assert "immutable" in answer.headers["cache-control"]


@pytest.mark.parametrize(
    ("start", "count"),
    [
        (0, 1),
        (1, 50),
        (DIGITS_PER_CHUNK - 5, 10),  # across a chunk boundary
        (DIGITS_PER_CHUNK - 3, DIGITS_PER_CHUNK + 7),  # across two
        (DECIMALS, 1),  # the last stored digit
        (0, DECIMALS + 1),  # all of them
        (DECIMALS + 1, 0),  # nothing, just past the end
    ],
)
async def test_any_stored_range_is_the_reference_digits(
    client: httpx.AsyncClient, start: int, count: int
) -> None:
    answer = await client.get("/v1/pi", params={"start": start, "numberOfDigits": count})
    assert answer.status_code == 200, answer.text
    assert answer.json()["content"] == PI_TEXT[start : start + count]


async def test_hexadecimal_digits_are_the_pi_apis_and_mpmaths(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/pi", params={"radix": 16})
    assert first.json()["content"] == PI_API_FIRST_100_HEX
    start = DIGITS_PER_CHUNK - 40
    crossing = await client.get(
        "/v1/pi", params={"start": start, "numberOfDigits": 100, "radix": 16}
    )
    assert crossing.json()["content"] == PI_HEX[start : start + 100]


async def test_a_range_past_the_stored_digits_names_the_job_that_would_store_it(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/v1/pi", params={"start": DECIMALS, "numberOfDigits": 2})
    assert answer.status_code == 404
    error = answer.json()["error"]
    assert f"positions 0 to {DECIMALS:,} are stored" in error
    assert f"num={DECIMALS + 1}" in error
    assert answer.headers["access-control-allow-origin"] == "*"
    assert answer.headers["cache-control"] == "no-store"


async def test_nothing_stored_says_so(client: httpx.AsyncClient, view: DigitsView) -> None:
    del view.stored[16]
    answer = await client.get("/v1/pi", params={"radix": 16, "numberOfDigits": 13})
    assert answer.status_code == 404
    assert "no hexadecimal digits are stored yet" in answer.json()["error"]
    assert "num=12&radix=16" in answer.json()["error"]


async def test_an_answer_has_an_etag_and_a_repeat_gets_304(client: httpx.AsyncClient) -> None:
    first = await client.get("/v1/pi", params={"start": 5, "numberOfDigits": 7})
    again = await client.get(
        "/v1/pi",
        params={"start": 5, "numberOfDigits": 7},
        headers={"If-None-Match": first.headers["etag"]},
    )
    assert again.status_code == 304 and again.content == b""


@pytest.mark.parametrize(
    ("path", "query", "says"),
    [
        ("/v1/pi", "start=-1", "start must be a whole number from 0"),
        ("/v1/pi", "start=1.5", "start must be a whole number from 0"),
        ("/v1/pi", "start=", "start must be a whole number from 0"),
        ("/v1/pi", "numberOfDigits=abc", "numberOfDigits must be a whole number from 0 to"),
        ("/v1/pi", f"numberOfDigits={MAX_DIGITS_PER_REQUEST + 1}", "from 0 to 1,000,000"),
        ("/v1/pi", "numberOfDigits=99999999999999999999999", "numberOfDigits must be"),
        ("/v1/pi", "radix=8", "radix must be 10 or 16"),
        ("/v1/pi", "radix=ten", "radix must be 10 or 16"),
        ("/v1/pi", "start=1&start=2", "start was given more than once"),
        ("/v1/pi", "start=%ff", "start must be a whole number from 0"),
        ("/v1/pi/search", "", "q is required"),
        ("/v1/pi/search", "q=", "q is required"),
        ("/v1/pi/search", "q=3.14", "q must be decimal digits only"),
        ("/v1/pi/search", "q=abc", "q must be decimal digits only"),
        ("/v1/pi/search", "q=12g&radix=16", "q must be hexadecimal digits only"),
        ("/v1/pi/search", "q=" + "1" * 21, "q may have at most 20 digits"),
        ("/v1/pi/search", "q=1&limit=0", "limit must be a whole number from 1 to 1,000"),
        ("/v1/pi/search", "q=1&limit=1001", "limit must be a whole number from 1 to 1,000"),
        ("/v1/pi/search", "q=1&radix=2", "radix must be 10 or 16"),
    ],
)
async def test_bad_parameters_get_a_400_saying_what_is_allowed(
    client: httpx.AsyncClient, view: DigitsView, path: str, query: str, says: str
) -> None:
    answer = await client.get(f"{path}?{query}")
    assert answer.status_code == 400
    assert answer.json()["success"] is False
    assert says in answer.json()["error"]
    assert answer.headers["access-control-allow-origin"] == "*"
    assert view.reads == 0


async def test_search_finds_the_first_positions_counting_the_3_as_0(
    client: httpx.AsyncClient,
) -> None:
    answer = await client.get("/v1/pi/search", params={"q": "14159"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["positions"][0] == 1 and body["q"] == "14159" and body["radix"] == 10
    expected: list[int] = []
    at = PI_TEXT.find("14159")
    while at >= 0 and len(expected) < 10:
        expected.append(at)
        at = PI_TEXT.find("14159", at + 1)
    assert body["positions"] == expected
    assert body["digits_stored"] == DECIMALS + 1


async def test_search_counts_overlaps_and_says_how_far_it_searched(
    client: httpx.AsyncClient,
) -> None:
    # Six 9s in a row start at decimal 762 (the Feynman point): "99" occurs 5 times there.
    answer = (await client.get("/v1/pi/search", params={"q": "999999"})).json()
    assert answer["positions"][0] == 762
    overlapping = (await client.get("/v1/pi/search", params={"q": "99", "limit": 1000})).json()
    feynman = [p for p in overlapping["positions"] if 762 <= p <= 766]
    assert feynman == [762, 763, 764, 765, 766]
    assert overlapping["digits_searched"] == overlapping["positions"][-1] + 2
    absent = (await client.get("/v1/pi/search", params={"q": "31415926535897932385"})).json()
    assert absent["positions"] == [] and absent["digits_searched"] == DECIMALS + 1


async def test_search_in_hexadecimal_digits_takes_upper_or_lower_case(
    client: httpx.AsyncClient,
) -> None:
    answer = (await client.get("/v1/pi/search", params={"q": "243F6A88", "radix": 16})).json()
    assert answer["positions"][0] == 1 and answer["q"] == "243f6a88"


async def test_a_found_search_is_cached_for_good_an_unfinished_one_briefly(
    client: httpx.AsyncClient,
) -> None:
    found = await client.get("/v1/pi/search", params={"q": "3", "limit": 2})
    assert "immutable" in found.headers["cache-control"]
    short = await client.get("/v1/pi/search", params={"q": "0123456789"})
    assert short.headers["cache-control"] == "public, max-age=60"


def test_the_digit_file_is_built_once_and_shared(view: DigitsView, tmp_path: Path) -> None:
    first = StoredText(tmp_path, 10, view)
    assert asyncio.run(first.positions()) == DECIMALS + 1
    reads = view.reads
    assert reads == DECIMALS // DIGITS_PER_CHUNK
    second = StoredText(tmp_path, 10, view)
    assert asyncio.run(second.positions()) == DECIMALS + 1
    assert view.reads == reads  # another process maps the file built by the first
    assert second.read(0, 10) == PI_TEXT[:10].encode()


def test_a_torn_tail_is_cut_and_written_again(view: DigitsView, tmp_path: Path) -> None:
    path = tmp_path / "pi-10.txt"
    path.write_bytes(PI_TEXT[: 1 + DIGITS_PER_CHUNK].encode() + b"7" * 1234)  # a crash mid-write
    text = StoredText(tmp_path, 10, view)
    assert asyncio.run(text.positions()) == DECIMALS + 1
    assert text.read(0, DECIMALS + 1) == PI_TEXT.encode()
    assert view.reads == 2  # the first chunk was kept


def test_never_more_than_the_view_holds(view: DigitsView, tmp_path: Path) -> None:
    asyncio.run(StoredText(tmp_path, 10, view).positions())
    view.stored[10] = view.stored[10][:DIGITS_PER_CHUNK]  # a view rebuilt, not caught up yet
    assert asyncio.run(StoredText(tmp_path, 10, view).positions()) == DIGITS_PER_CHUNK + 1
