"""The public address serves downloads too: from the num's compressed digits, which the
downloader builds once. On the downloader's host the API reads them itself (a slow reader then
holds nothing but its own connection); elsewhere it streams the zip through from the downloader.
A client has a few downloads under way at most."""

from collections import Counter
from collections.abc import Callable

import httpx
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import Headers
from starlette.types import Receive, Scope, Send

from services.shared.downloads import download_response
from services.shared.events import Radix
from services.shared.view import JobView
from services.shared.web import ApiError
from services.shared.zip_cache import ZipCache

# Both ways, only what describes the download: never hop-by-hop or client-identifying headers.
_ASKED_HEADERS = ("range", "if-range", "if-none-match")
_PASSED_HEADERS = (
    "content-type",
    "content-disposition",
    "content-length",
    "content-range",
    "accept-ranges",
    "etag",
    "cache-control",
    "x-content-sha256",
)
_UNAVAILABLE = "downloads are unavailable right now: try again shortly"


class Downloads:
    def __init__(self, cache: ZipCache, downloader: httpx.AsyncClient) -> None:
        self._cache = cache
        self._downloader = downloader

    async def respond(self, job: JobView, method: str, asked: Headers) -> Response:
        digits = self._cache.open(job.num, job.radix)
        if digits is None:
            await self._have_it_compressed(job.num, job.radix)
            digits = self._cache.open(job.num, job.radix)
        if digits is not None:
            return download_response(job, digits, method, asked)
        return await self._stream_through(f"/download_pi_job/{job.job_id}", method, asked)

    async def _have_it_compressed(self, num: int, radix: Radix) -> None:
        try:
            answer = await self._downloader.put(
                f"/compressed_digits/{num}", params={"radix": radix}, timeout=600
            )
        except httpx.HTTPError:
            raise ApiError(503, _UNAVAILABLE) from None
        if answer.status_code >= 500:
            raise ApiError(503, _UNAVAILABLE)

    async def _stream_through(self, path: str, method: str, asked: Headers) -> Response:
        headers = {name: asked[name] for name in _ASKED_HEADERS if name in asked}
        client = self._downloader
        try:
            upstream = await client.send(
                client.build_request(method, path, headers=headers), stream=True
            )
        except httpx.HTTPError:
            raise ApiError(503, _UNAVAILABLE) from None
        headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASSED_HEADERS}
        return StreamingResponse(
            upstream.aiter_raw(),
            status_code=upstream.status_code,
            headers=headers,
            background=BackgroundTask(upstream.aclose),
        )


class DownloadSlots:
    """Downloads under way per client address (in this process): beyond the limit, 429."""

    def __init__(self, per_client: int) -> None:
        self._per_client = per_client
        self._taken: Counter[str] = Counter()

    def take(self, client: str) -> Callable[[], None]:
        """A slot, or a 429; call what it returns when the download is over."""
        if self._taken[client] >= self._per_client:
            raise ApiError(
                429,
                f"{self._per_client} downloads from {client} are under way: "
                "retry when one has finished",
                headers={"Retry-After": "5"},
            )
        self._taken[client] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._taken[client] -= 1
                if self._taken[client] <= 0:
                    del self._taken[client]

        return release

    def taken(self, client: str) -> int:
        return self._taken[client]


def respond_then(response: Response, done: Callable[[], None]) -> Response:
    """`response`, calling `done` once it is sent, cut short, or failed."""
    return _Then(response, done)


class _Then(Response):
    def __init__(self, inner: Response, done: Callable[[], None]) -> None:
        super().__init__(status_code=inner.status_code)
        self._inner = inner
        self._done = done

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self._inner(scope, receive, send)
        finally:
            self._done()
