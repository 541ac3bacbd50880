"""How our HTTP services are served: uvicorn on uvloop with the httptools parser (several times
the throughput of the pure-Python defaults here), each response's head and body sent together,
guarded against what that parser lets through, and with errors in our JSON shape even for
requests too malformed to reach the app."""

import asyncio
import json
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# A request line and headers larger than this are refused (httptools has no limit of its own).
MAX_HEAD_BYTES = 16 * 1024


class _Refused(Exception):
    """Raised in a parser callback: httptools reports it as a parse error, answered 400."""


class _CoalescedWrites:
    """uvicorn writes a response's head and body separately; joined, they leave in one send
    (one system call, one packet) at the end of the event loop's turn: a fifth more submissions
    a second in `make bench-load`. Large writes (downloads) go at once."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._pending: list[bytes] = []
        self._size = 0

    def write(self, data: bytes) -> None:
        if not self._pending:
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(data)
        self._size += len(data)
        if self._size >= 65536:
            self._flush()

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending) if len(self._pending) > 1 else self._pending[0]
            self._pending.clear()
            self._size = 0
            self._transport.write(data)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# Draining, a connection waiting for its next request gets this long to send it.
DRAIN_IDLE_SECONDS = 1.0


class GuardedHttpProtocol(HttpToolsProtocol):
    _draining = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescedWrites(transport))  # type: ignore[arg-type]

    def shutdown(self) -> None:
        """Draining (SIGTERM, a rolling restart): uvicorn would close an idle keep-alive
        connection at once, under a client that may be sending its next request on it right
        then, which fails. It gets a moment instead, and that request an answer saying
        `Connection: close`; a connection in the middle of a request ends after its answer."""
        if self.cycle is None or self.cycle.response_complete:
            self._draining = True
            self.loop.call_later(DRAIN_IDLE_SECONDS, self._close_if_idle)
        else:
            self.cycle.keep_alive = False

    def _close_if_idle(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.close()

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        if self._draining:
            self.cycle.keep_alive = False

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        self._refusal: str | None = None

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value))
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            self._refusal = f"request line and headers over {MAX_HEAD_BYTES} bytes"
            raise _Refused(self._refusal)

    def send_400_response(self, msg: str) -> None:
        reason = getattr(self, "_refusal", None) or msg
        body = json.dumps({"success": False, "error": f"malformed HTTP request: {reason}"})
        head = [b"HTTP/1.1 400 Bad Request\r\n"]
        for name, value in self.server_state.default_headers:
            head += [name, b": ", value, b"\r\n"]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body.encode())
        self.transport.close()


# Keyword arguments of uvicorn.run / uvicorn.Config shared by every service.
SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": GuardedHttpProtocol,
    "log_config": None,
    "access_log": False,
    "server_header": False,
}
