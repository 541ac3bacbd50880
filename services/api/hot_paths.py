"""GET /pi_job/{id} and POST /pi_job, the calls clients make most, answered by plain ASGI code.

FastAPI's middleware, routing, parameter solving and exception layers cost a POST about as much
CPU as its own work (measured with `make bench-load`), so these two skip them. They call the same
functions as the FastAPI routes (which still document them in the OpenAPI schema), errors keep
their shape, and the metrics middleware around this one counts them under the same routes.
"""

import logging
from collections.abc import Awaitable, Callable

from fastapi.responses import Response
from starlette.requests import Request
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from services.shared.web import UNEXPECTED_ERROR, ApiError, error_response, header

log = logging.getLogger(__name__)

StatusCall = Callable[[Scope, str], Awaitable[Response]]  # (the request, job id)
SubmitCall = Callable[[Request], Awaitable[Response]]

_JOB_PREFIX = "/pi_job/"


class HotPaths:
    def __init__(
        self,
        app: ASGIApp,
        status: StatusCall,
        submit: SubmitCall,
        status_route: BaseRoute,
        submit_route: BaseRoute,
    ) -> None:
        self._app = app
        self._status = status
        self._submit = submit
        self._status_route = status_route
        self._submit_route = submit_route

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        response = await self._answer(scope, receive) if scope["type"] == "http" else None
        if response is None:
            await self._app(scope, receive, send)
        else:
            await response(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive) -> Response | None:
        """The response to a hot path; None for anything else."""
        if scope["http_version"] == "1.1" and header(scope, b"host") is None:
            # HTTP/1.1 requires it (RFC 9112 3.2); httptools does not check.
            return error_response(400, "malformed HTTP request: no Host header")
        method, path = scope["method"], scope["path"]
        job_id = path[len(_JOB_PREFIX) :]
        if method == "GET" and path.startswith(_JOB_PREFIX) and job_id and "/" not in job_id:
            scope["route"] = self._status_route
            return await _answered(self._status(scope, job_id))
        if method == "POST" and path == "/pi_job":
            scope["route"] = self._submit_route
            return await _answered(self._submit(Request(scope, receive)))
        return None


async def _answered(call: Awaitable[Response]) -> Response:
    try:
        return await call
    except ApiError as error:
        return error_response(error.status_code, error.message, error.headers)
    except Exception:
        log.exception("unexpected error")
        return error_response(500, UNEXPECTED_ERROR)
