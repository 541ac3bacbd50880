"""The public address serves downloads too: they are streamed through from the downloader."""

import httpx
from fastapi.responses import StreamingResponse
from starlette.background import BackgroundTask

from services.shared.web import ApiError

_PASSED_HEADERS = (
    "content-type",
    "content-disposition",
    "content-length",
    "etag",
    "cache-control",
    "x-content-sha256",
)


async def proxy_download(
    client: httpx.AsyncClient, path: str, if_none_match: str | None
) -> StreamingResponse:
    headers = {"If-None-Match": if_none_match} if if_none_match else {}
    try:
        upstream = await client.send(
            client.build_request("GET", path, headers=headers), stream=True
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
