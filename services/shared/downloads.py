"""A finished job's zip as an HTTP response, from the num's compressed digits: whole, one byte
range of it (a resumed download: `curl -C -`), or only its headers (HEAD).

The zip is the job's own header, the shared deflate data, and its own trailer (zip_layout.py).
Bodies go out in pieces as the client takes them, read from the file as they go: memory stays
flat whatever the size and however slow the reader.
"""

import asyncio
import re
from collections.abc import Iterator
from dataclasses import dataclass

from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from services.shared.view import JobView
from services.shared.web import ApiError, error_response, etag_matches
from services.shared.zip_cache import CompressedDigits, read_deflate
from services.shared.zip_layout import zip_prefix, zip_suffix

_PIECE = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def zip_name(job_id: str) -> str:
    return f"digits_of_pi_{job_id}"


def require_complete(job: JobView, stored_digits: int) -> JobView:
    """The job as downloads see it: complete once its digits are in the view too; else 404."""
    seen = job.as_seen_with(stored_digits)
    if seen.status != "complete":
        raise ApiError(404, f"job {job.job_id} is not complete (status: {seen.status})")
    return seen


def download_response(
    job: JobView, digits: CompressedDigits, method: str, request: Headers
) -> Response:
    """The response to GET or HEAD of the job's zip, given the request's headers. Takes
    ownership of `digits` (closed once the response is sent, or at once if it is not needed)."""
    name = zip_name(job.job_id)
    modified = job.finished_at or job.requested_at
    prefix = zip_prefix(f"{name}.txt", modified)
    suffix = zip_suffix(f"{name}.txt", modified, digits.deflated)
    total = len(prefix) + digits.deflated.deflate_size + len(suffix)
    etag = f'"{digits.sha256}"'
    headers = {
        "Content-Disposition": f'attachment; filename="{name}.zip"',
        "ETag": etag,
        "X-Content-SHA256": digits.sha256,
        # The digits of pi never change: a finished job's zip is immutable.
        "Cache-Control": "public, max-age=31536000, immutable",
        "Accept-Ranges": "bytes",
    }
    if etag_matches(request.get("if-none-match"), etag):
        digits.close()
        return Response(status_code=304, headers=headers)
    wanted = _wanted_range(request, etag, total)
    if wanted is None:
        digits.close()
        return error_response(
            416,
            f"the range is not within the {total} bytes of the zip",
            headers={"Content-Range": f"bytes */{total}"},
        )
    start, end = wanted
    status = 200
    if (start, end) != (0, total):
        status = 206
        headers["Content-Range"] = f"bytes {start}-{end - 1}/{total}"
    headers["Content-Length"] = str(end - start)
    parts = _ZipParts(prefix, digits, suffix)
    return _ZipBody(parts, start, end, status, headers, send_body=method != "HEAD")


def _wanted_range(request: Headers, etag: str, total: int) -> tuple[int, int] | None:
    """[start, end) to send: the whole zip unless one satisfiable byte range is asked for (and
    If-Range, if given, still names this zip); None when the range cannot be satisfied."""
    asked = request.get("range")
    if asked is None or (request.get("if-range") not in (None, etag)):
        return 0, total
    match = _RANGE.fullmatch(asked.strip())
    if match is None or match.groups() == ("", ""):
        return 0, total  # several ranges, or another unit: the whole zip, as RFC 9110 allows
    first, last = match.groups()
    if first == "":  # the last N bytes
        return (max(total - int(last), 0), total) if int(last) > 0 else None
    start = int(first)
    if last and int(last) < start:
        return 0, total  # not a valid range: ignored
    if start >= total:
        return None
    return start, min(int(last) + 1, total) if last else total


@dataclass(frozen=True)
class _ZipParts:
    prefix: bytes
    digits: CompressedDigits
    suffix: bytes

    def pieces(self, start: int, end: int) -> Iterator[bytes]:
        """Bytes [start, end) of the zip."""
        data_start = len(self.prefix)
        data_end = data_start + self.digits.deflated.deflate_size
        if start < data_start:
            yield self.prefix[start : min(end, data_start)]
        if start < data_end and end > data_start:
            first, last = max(start, data_start) - data_start, min(end, data_end) - data_start
            yield from read_deflate(self.digits, first, last, _PIECE)
        if end > data_end:
            yield self.suffix[max(start, data_end) - data_end : end - data_end]


class _ZipBody(Response):
    def __init__(
        self,
        parts: _ZipParts,
        start: int,
        end: int,
        status: int,
        headers: dict[str, str],
        send_body: bool,
    ) -> None:
        super().__init__(status_code=status, headers=headers, media_type="application/zip")
        self._parts = parts
        self._start, self._end = start, end
        self._send_body = send_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            start = {"type": "http.response.start", "status": self.status_code}
            await send({**start, "headers": self.raw_headers})
            if self._send_body:
                await self._send_pieces(receive, send)
            await send({"type": "http.response.body", "body": b""})
        finally:
            self._parts.digits.close()

    async def _send_pieces(self, receive: Receive, send: Send) -> None:
        # A client gone mid-way is noticed here (sending to it just does nothing): the rest of
        # the file is then not read for nobody.
        gone = asyncio.Event()

        async def notice_disconnect() -> None:
            message: Message = {}
            while message.get("type") != "http.disconnect":
                message = await receive()
            gone.set()

        watching = asyncio.create_task(notice_disconnect())
        try:
            for piece in self._parts.pieces(self._start, self._end):
                if gone.is_set():
                    return
                await send({"type": "http.response.body", "body": piece, "more_body": True})
        finally:
            watching.cancel()
