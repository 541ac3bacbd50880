"""What the HTTP services share: errors as {"success": false, "error": "..."}, /readyz's answer,
job lookups."""

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import Scope

from services.shared.job_ids import is_job_id
from services.shared.view import JobView, ViewReader

log = logging.getLogger(__name__)

UNEXPECTED_ERROR = "internal error: the team has been told"


class ApiError(Exception):
    def __init__(
        self, status_code: int, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.headers = headers or {}


def error_response(
    status_code: int, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        {"success": False, "error": message}, status_code=status_code, headers=headers
    )


def readiness(problems: list[str]) -> JSONResponse:
    """What /readyz answers: 200, or 503 naming everything that is missing."""
    if problems:
        return error_response(503, "; ".join(problems))
    return JSONResponse({"success": True})


def install_error_handlers(app: FastAPI) -> None:
    async def on_api_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, ApiError)
        return error_response(error.status_code, error.message, error.headers)

    async def on_http_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, HTTPException)
        message = "no such endpoint" if error.status_code == 404 else str(error.detail)
        return error_response(error.status_code, message)

    async def on_validation_error(_: Request, error: Exception) -> JSONResponse:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {"msg": "invalid request"}
        where = ".".join(str(part) for part in first.get("loc", ()))
        return error_response(422, f"{where}: {first['msg']}" if where else str(first["msg"]))

    async def on_unexpected_error(request: Request, error: Exception) -> JSONResponse:
        log.error("unexpected error", extra={"path": request.url.path}, exc_info=error)
        return error_response(500, UNEXPECTED_ERROR)

    app.add_exception_handler(Exception, on_unexpected_error)
    app.add_exception_handler(ApiError, on_api_error)
    app.add_exception_handler(HTTPException, on_http_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)


def etag_matches(if_none_match: str | None, etag: str) -> bool:
    """Whether an If-None-Match header names `etag` (or is `*`); weak or strong, as for GET."""
    if if_none_match is None:
        return False
    wanted = etag.removeprefix("W/")
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == wanted:
            return True
    return False


def find_job(job_id: str, view: ViewReader) -> JobView:
    """The job, or a 404 that says so; anything that is not a job id is simply not found."""
    job = view.get_job(job_id) if is_job_id(job_id) else None
    if job is None:
        raise job_not_found(job_id)
    return job


def job_not_found(job_id: str) -> ApiError:
    return ApiError(404, f"no job with id {job_id[:80]!r}")


def header(scope: Scope, name: bytes) -> str | None:
    """A request header from the raw ASGI scope (cheaper than building a Request)."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None
