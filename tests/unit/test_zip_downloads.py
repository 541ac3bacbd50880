"""A job's zip from the num's compressed digits: a valid zip, whole or by ranges; the cache of
compressed digits bounded by size."""

import asyncio
import hashlib
import io
import os
import random
import shutil
import subprocess
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from starlette.datastructures import Headers
from starlette.types import Message

from services.shared.downloads import download_response
from services.shared.settings import ApiSettings
from services.shared.view import JobView
from services.shared.zip_cache import ZipCache
from services.shared.zip_layout import MAX_ZIP_BYTES, Deflated, zip_suffix

FINISHED = datetime(2026, 3, 14, 15, 9, 26, tzinfo=UTC)
TEXT = b"3." + b"1415926535" * 50_000


def job(job_id: str = "0" * 32, num: int = len(TEXT) - 2) -> JobView:
    return JobView(
        job_id=job_id, num=num, status="complete", requested_at=FINISHED, finished_at=FINISHED
    )


def pieces(text: bytes = TEXT, size: int = 65536) -> Iterator[bytes]:
    for start in range(0, len(text), size):
        yield text[start : start + size]


@pytest.fixture
def cache(tmp_path: Path) -> ZipCache:
    return ZipCache(tmp_path / "zips", max_bytes=10**9)


def respond(
    cache: ZipCache, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """Run the response as an ASGI app would be: (status, headers, body)."""
    digits = cache.open(len(TEXT) - 2) or cache.build(len(TEXT) - 2, pieces())
    response = download_response(job(), digits, method, Headers(headers or {}))
    sent: list[Message] = []

    async def receive() -> Message:
        await asyncio.Event().wait()  # the client stays
        return {}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(response({"type": "http", "method": method}, receive, send))
    start = sent[0]
    got = {k.decode(): v.decode() for k, v in start["headers"]}
    return start["status"], got, b"".join(m.get("body", b"") for m in sent[1:])


def test_the_zip_holds_the_text_named_for_the_job_and_dated_when_it_finished(
    cache: ZipCache, tmp_path: Path
) -> None:
    status, headers, body = respond(cache)
    assert status == 200 and int(headers["content-length"]) == len(body)
    assert headers["x-content-sha256"] == hashlib.sha256(TEXT).hexdigest()
    archive = zipfile.ZipFile(io.BytesIO(body))
    name = f"digits_of_pi_{'0' * 32}.txt"
    assert archive.namelist() == [name] and archive.testzip() is None
    assert archive.read(name) == TEXT
    assert archive.infolist()[0].date_time == (2026, 3, 14, 15, 9, 26)
    # And a zip tool of its own agrees (Info-ZIP's unzip, where the machine has it).
    if shutil.which("unzip"):
        saved = tmp_path / "job.zip"
        saved.write_bytes(body)
        tested = subprocess.run(["unzip", "-t", str(saved)], capture_output=True, check=False)
        assert tested.returncode == 0 and b"No errors" in tested.stdout, tested


def test_any_range_is_those_bytes_of_the_whole_zip(cache: ZipCache) -> None:
    _, _, whole = respond(cache)
    size = len(whole)
    for start, end in [(0, 0), (0, 29), (10, 200), (100, size - 1), (size - 50, size - 1)]:
        status, headers, part = respond(cache, {"range": f"bytes={start}-{end}"})
        assert status == 206 and part == whole[start : end + 1], (start, end)
        assert headers["content-range"] == f"bytes {start}-{end}/{size}"
        assert int(headers["content-length"]) == end - start + 1
    assert respond(cache, {"range": "bytes=1000-"})[2] == whole[1000:]
    assert respond(cache, {"range": "bytes=-100"})[2] == whole[-100:]
    assert respond(cache, {"range": f"bytes=5-{size + 1000}"})[2] == whole[5:]


def test_ranges_that_cannot_be_served_answer_416_or_the_whole_zip(cache: ZipCache) -> None:
    _, _, whole = respond(cache)
    status, headers, body = respond(cache, {"range": f"bytes={len(whole)}-"})
    assert status == 416 and headers["content-range"] == f"bytes */{len(whole)}"
    assert b'"success":false' in body.replace(b" ", b"")
    assert respond(cache, {"range": "bytes=-0"})[0] == 416
    for ignored in ["bytes=9-3", "bytes=0-1,5-9", "items=0-1", "bytes=-", "bytes=x-y"]:
        assert respond(cache, {"range": ignored})[:3:2] == (200, whole), ignored
    # If-Range naming another version: the whole zip, so nothing is stitched together wrongly.
    assert respond(cache, {"range": "bytes=0-9", "if-range": '"other"'})[0] == 200
    etag = respond(cache)[1]["etag"]
    assert respond(cache, {"range": "bytes=0-9", "if-range": etag})[0] == 206


def test_head_has_the_headers_of_get_and_no_body(cache: ZipCache) -> None:
    _, got, whole = respond(cache)
    status, headers, body = respond(cache, method="HEAD")
    assert status == 200 and body == b"" and headers == got
    assert int(headers["content-length"]) == len(whole)


def test_if_none_match_with_the_etag_answers_304(cache: ZipCache) -> None:
    etag = respond(cache)[1]["etag"]
    status, _, body = respond(cache, {"if-none-match": etag})
    assert (status, body) == (304, b"")


def test_the_cache_keeps_the_recently_used_within_its_bound(tmp_path: Path) -> None:
    text = {num: b"3." + os.urandom(20_000) for num in (1, 2, 3)}  # random: does not compress
    cache = ZipCache(tmp_path, max_bytes=50_000)
    cache.build(1, [text[1]]).close()
    cache.build(2, [text[2]]).close()
    os.utime(tmp_path / "1.deflate", (1, 1))
    os.utime(tmp_path / "2.deflate", (2, 2))
    cache.build(3, [text[3]]).close()  # over the bound: the least recently used goes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2.deflate", "3.deflate"]
    opened = cache.open(2)
    assert opened is not None and opened.sha256 == hashlib.sha256(text[2]).hexdigest()
    opened.close()


def test_a_damaged_or_unfinished_file_is_never_served(tmp_path: Path) -> None:
    cache = ZipCache(tmp_path, max_bytes=10**9)
    cache.build(7, [b"3.1415926"]).close()
    path = tmp_path / "7.deflate"
    path.write_bytes(path.read_bytes()[:-1])  # torn
    assert cache.open(7) is None
    (tmp_path / ".8.abc.part").write_bytes(b"half")
    cache.remove_leftovers()
    assert not (tmp_path / ".8.abc.part").exists()


_TO_DIGITS = bytes(48 + byte % 10 for byte in range(256))


def random_digit_pieces(count: int, seed: int) -> Iterator[bytes]:
    """count pseudo-random decimals after "3.", made piece by piece (like the view's chunks)."""
    rng = random.Random(seed)
    yield b"3."
    for start in range(0, count, 100_000):
        size = min(100_000, count - start)
        yield rng.randbytes(size).translate(_TO_DIGITS)


def test_a_multi_megabyte_zip_is_built_and_sent_in_pieces_and_resumes(tmp_path: Path) -> None:
    num = 12_000_000  # random digits deflate to about 0.47 byte each: a 5.6 MB zip
    cache = ZipCache(tmp_path / "zips", max_bytes=10**9)
    digits = cache.build(num, random_digit_pieces(num, seed=12))
    text_sha256 = hashlib.sha256(b"".join(random_digit_pieces(num, seed=12))).hexdigest()
    assert digits.sha256 == text_sha256 and digits.deflated.deflate_size > 5_000_000

    def sent_pieces(headers: dict[str, str]) -> list[bytes]:
        response = download_response(
            job(num=num), cache.open(num) or digits, "GET", Headers(headers)
        )
        sent: list[Message] = []

        async def receive() -> Message:
            await asyncio.Event().wait()
            return {}

        async def send(message: Message) -> None:
            sent.append(message)

        asyncio.run(response({"type": "http", "method": "GET"}, receive, send))
        return [m.get("body", b"") for m in sent[1:]]

    whole_pieces = sent_pieces({})
    whole = b"".join(whole_pieces)
    # Sent as read from the file, a piece at a time, never as one body.
    assert len(whole_pieces) > 20 and max(len(p) for p in whole_pieces) <= 256 * 1024
    cut = len(whole) * 2 // 3  # a download cut there resumes with a Range
    resumed = b"".join(sent_pieces({"range": f"bytes={cut}-"}))
    assert whole[:cut] + resumed == whole and len(resumed) == len(whole) - cut
    name = f"digits_of_pi_{'0' * 32}.txt"
    with zipfile.ZipFile(io.BytesIO(whole)).open(name) as unzipped:
        streamed = hashlib.sha256()
        while piece := unzipped.read(1 << 20):
            streamed.update(piece)
    assert streamed.hexdigest() == text_sha256


def test_the_largest_num_zips_without_zip64_records() -> None:
    # 1e9 decimals deflate to about 470 MB: both sizes stay below the 32-bit limit.
    assert ApiSettings().pi_jobs_max_num + 2 < MAX_ZIP_BYTES
    too_large = Deflated(crc32=0, text_size=MAX_ZIP_BYTES + 1, deflate_size=10)
    with pytest.raises(ValueError, match="zip64"):
        zip_suffix("x.txt", FINISHED, too_large)
