"""Serves a finished job's digits as a zip, read from the projected view."""

import functools
import hashlib
from collections.abc import Iterator
from typing import Annotated

from fastapi import FastAPI, Header
from fastapi.responses import Response, StreamingResponse

from services.downloader.zipstream import zip_single_file
from services.shared.metrics import install_metrics
from services.shared.view import ViewReader
from services.shared.web import ApiError, find_job, install_error_handlers

_PIECE = 1 << 20


def _text_pieces(view: ViewReader, num: int) -> Iterator[bytes]:
    yield b"3."
    for digits in view.iter_digits(num):
        for start in range(0, len(digits), _PIECE):
            yield digits[start : start + _PIECE].encode("ascii")


def _sha256(view: ViewReader, num: int) -> str:
    digest = hashlib.sha256()
    for piece in _text_pieces(view, num):
        digest.update(piece)
    return digest.hexdigest()


def create_app(view: ViewReader) -> FastAPI:
    app = FastAPI(title="pi-jobs downloader", redirect_slashes=False)

    @functools.lru_cache(maxsize=4096)
    def sha256_of(num: int) -> str:
        """The digits of pi never change, so neither does a prefix's hash: computed once."""
        return _sha256(view, num)

    install_error_handlers(app)
    install_metrics(app, "downloader")

    @app.get("/download_pi_job/{job_id}", response_model=None)
    def download(
        job_id: str, if_none_match: Annotated[str | None, Header()] = None
    ) -> StreamingResponse | Response:
        job = find_job(job_id, view).as_seen_with(view.stored_digits())
        if job.status != "complete":
            raise ApiError(404, f"job {job_id} is not complete (status: {job.status})")
        sha256 = sha256_of(job.num)
        if if_none_match == f'"{sha256}"':
            return Response(status_code=304, headers={"ETag": if_none_match})
        return StreamingResponse(
            zip_single_file(
                f"digits_of_pi_{job_id}.txt",
                job.finished_at or job.requested_at,
                _text_pieces(view, job.num),
            ),
            media_type="application/zip",
            headers={
                "Content-Disposition": f'attachment; filename="digits_of_pi_{job_id}.zip"',
                "ETag": f'"{sha256}"',
                "X-Content-SHA256": sha256,
                # The digits of pi never change: a finished job's zip is immutable.
                "Cache-Control": "public, max-age=31536000, immutable",
            },
        )

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"success": True}

    return app
