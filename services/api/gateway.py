"""The public address serves downloads too: from the compressed digits when this host has
them (no hop at all), else streamed through from the downloader, which builds them."""

import httpx
from fastapi.responses import Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.datastructures import Headers

from services.shared.web import ApiError

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


async def proxy_download(
    client: httpx.AsyncClient, path: str, method: str, asked: Headers
) -> Response:
    headers = {name: asked[name] for name in _ASKED_HEADERS if name in asked}
    try:
        upstream = await client.send(
            client.build_request(method, path, headers=headers), stream=True
        )
    except httpx.HTTPError:
        raise ApiError(503, "downloads are unavailable right now: try again shortly") from None
    headers = {k: v for k, v in upstream.headers.items() if k.lower() in _PASSED_HEADERS}
    return StreamingResponse(
        upstream.aiter_raw(),
        status_code=upstream.status_code,
        headers=headers,
        background=BackgroundTask(upstream.aclose),
    )
