"""/healthz, /readyz and /metrics for the services that have no HTTP API of their own
(calculator, projector), served from inside their event loop."""

import asyncio
import contextlib
import logging
import socket
from collections.abc import Callable, Iterator

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse

from services.shared.http_server import server_options
from services.shared.metrics import install_metrics
from services.shared.web import readiness

log = logging.getLogger(__name__)


class _EmbeddedServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield  # the service's own shutdown handles SIGINT and SIGTERM


def ops_app(service: str, problems: Callable[[], list[str]]) -> FastAPI:
    app = FastAPI(title=f"pi-jobs {service}", openapi_url=None)
    install_metrics(app, service)

    @app.get("/healthz")
    def healthz() -> dict[str, bool]:
        return {"success": True}

    @app.get("/readyz")
    def readyz() -> JSONResponse:
        return readiness(problems())

    return app


async def serve_ops(service: str, host: str, port: int, problems: Callable[[], list[str]]) -> None:
    """Serve until cancelled. A port already taken (a second replica on this host) only costs
    this replica its ops endpoints."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
    except OSError as error:
        listener.close()
        log.warning("ops endpoints not served", extra={"port": port, "error": str(error)})
        await asyncio.Event().wait()
        return
    config = uvicorn.Config(ops_app(service, problems), lifespan="off", **server_options())
    server = _EmbeddedServer(config)
    log.info("ops endpoints served", extra={"port": listener.getsockname()[1]})
    serving = asyncio.create_task(server.serve(sockets=[listener]))
    try:
        await asyncio.shield(serving)
    except asyncio.CancelledError:
        # Shut the server down properly: closing its socket under the event loop would leave
        # the loop watching a file descriptor that the next connection reuses.
        server.should_exit = True
        await serving
        raise
    finally:
        listener.close()
