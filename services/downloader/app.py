"""Serves a finished job's zip, from the num's compressed digits (built once, from the view)."""

import asyncio
from collections.abc import Iterator
from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response

from services.shared.downloads import download_response, require_complete
from services.shared.events import Radix
from services.shared.metrics import install_metrics
from services.shared.view import ViewReader, read_view
from services.shared.web import ApiError, find_job, install_error_handlers, readiness
from services.shared.zip_cache import CompressedDigits, ZipCache

_PIECE = 1 << 20


def text_pieces(view: ViewReader, num: int, radix: Radix = 10) -> Iterator[bytes]:
    """The text of a num's zip, "3." and the digits, read from the view piece by piece."""
    yield b"3."
    for digits in view.iter_digits(num, radix):
        for start in range(0, len(digits), _PIECE):
            yield digits[start : start + _PIECE].encode("ascii")


def create_app(view: ViewReader, cache: ZipCache) -> FastAPI:
    # Its OpenAPI description, without FastAPI's /docs and /redoc (their scripts come from a CDN).
    app = FastAPI(title="pi-jobs downloader", redirect_slashes=False, docs_url=None, redoc_url=None)
    install_error_handlers(app)
    install_metrics(app, "downloader")
    cache.remove_leftovers()
    # One build of a (num, radix) at a time.
    builds: dict[tuple[int, Radix], asyncio.Future[None]] = {}

    async def compressed(num: int, radix: Radix) -> CompressedDigits:
        for _ in range(3):  # a file evicted again before it is opened is built again
            digits = cache.open(num, radix)
            if digits is not None:
                return digits
            build = builds.get((num, radix))
            if build is None:
                build = asyncio.ensure_future(asyncio.to_thread(_build, num, radix))
                builds[num, radix] = build
                build.add_done_callback(lambda _: builds.pop((num, radix), None))
            await asyncio.shield(build)
        raise ApiError(503, "downloads are too many for the cache's size right now: try again")

    def _build(num: int, radix: Radix) -> None:
        # Compressing runs beside the event loop (zlib lets go of the GIL while it works).
        cache.build(num, text_pieces(view, num, radix), radix).close()

    @app.api_route("/download_pi_job/{job_id}", methods=["GET", "HEAD"], response_model=None)
    async def download(job_id: str, request: Request) -> Response:
        job = await read_view(view, find_job, job_id, view)
        job = require_complete(job, await read_view(view, view.stored_digits, job.radix))
        digits = await compressed(job.num, job.radix)
        return download_response(job, digits, request.method, request.headers)

    @app.put("/compressed_digits/{num}", status_code=204, include_in_schema=False)
    async def compress(num: int, radix: Literal[10, 16] = 10) -> Response:
        """For an API process on this host: have the num's digits compressed, to serve the zip
        itself (a slow reader then holds nothing here)."""
        stored = await read_view(view, view.stored_digits, radix)
        if not 1 <= num <= stored:
            raise ApiError(404, f"the view holds {stored} digits of radix {radix}, not {num}")
        (await compressed(num, radix)).close()
        return Response(status_code=204)

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"success": True}

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        """Ready: the view can be read and compressed digits written."""
        problems = [problem for problem in (cache.problem(),) if problem]
        try:
            await read_view(view, view.stored_digits)
        except Exception as error:  # the store's own: sqlite3's, psycopg's
            problems.append(f"the view cannot be read ({type(error).__name__})")
        return readiness(problems)

    return app
