"""How our HTTP services are served: uvicorn on uvloop with the httptools parser (several times
the throughput of the pure-Python defaults here), each response's head and body sent together,
guarded against what that parser lets through, and with errors in our JSON shape even for
requests too malformed to reach the app."""

import asyncio
import json
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from services.shared.connections import (
    LOG_EVERY_SECONDS,
    ConnectionLimits,
    parse_networks,
)
from services.shared.settings import HttpSettings

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


@dataclass(frozen=True)
class _Policy:
    limits: ConnectionLimits
    request_seconds: float


_policy: _Policy | None = None


def _this_process_policy() -> _Policy:
    """From the environment's settings, read at this process's first connection."""
    global _policy
    if _policy is None:
        http = HttpSettings()
        limits = ConnectionLimits.for_this_process(
            http.pi_jobs_max_connections,
            http.pi_jobs_max_connections_per_client,
            uncapped=parse_networks(http.pi_jobs_trusted_proxies),
        )
        _policy = _Policy(limits, http.pi_jobs_request_seconds)
    return _policy


def _json_answer(status: str, message: str, *headers: bytes) -> bytes:
    """A whole response with our error body, for a connection about to be closed."""
    body = json.dumps({"success": False, "error": message}).encode()
    head = [f"HTTP/1.1 {status}\r\n".encode(), b"content-type: application/json\r\n"]
    head += [h + b"\r\n" for h in headers]
    head += [b"content-length: " + str(len(body)).encode() + b"\r\n", b"connection: close\r\n\r\n"]
    return b"".join(head) + body


class GuardedHttpProtocol(HttpToolsProtocol):
    _admitted = False
    _deadline: asyncio.TimerHandle | None = None
    _draining = False
    _head_bytes = 0
    _refusal: str | None = None

    # Connections: refused beyond the caps; released when closed.

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(_CoalescedWrites(transport))  # type: ignore[arg-type]
        policy = _this_process_policy()
        refused = policy.limits.admit(self._address)
        if refused is not None:
            if not policy.limits.counting_refusals_scheduled:
                policy.limits.counting_refusals_scheduled = True
                self.loop.call_later(LOG_EVERY_SECONDS, _log_refusals, policy.limits)
            answer = _json_answer("503 Service Unavailable", refused, b"retry-after: 1")
            self.transport.write(answer)
            self.transport.close()
            return
        self._admitted = True
        self._start_deadline()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._admitted:
            _this_process_policy().limits.release(self._address)
            self._admitted = False
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    @property
    def _address(self) -> str | None:
        return self.client[0] if self.client else None

    # A request must arrive whole (line, headers, body) within its time, counted from its first
    # byte, or from the connection if none came: slow or silent clients hold nothing for long.

    def _start_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._deadline = self.loop.call_later(
            _this_process_policy().request_seconds, self._too_slow
        )

    def _too_slow(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        # Unless an answer is half sent, the client is told why (a head or a body trickling in).
        cycle = self.cycle
        if cycle is None or cycle.response_complete or not cycle.response_started:
            seconds = _this_process_policy().request_seconds
            message = f"the request did not arrive within {seconds:g} s"
            self.transport.write(_json_answer("408 Request Timeout", message))
        self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_deadline()
        self._head_bytes = 0
        self._refusal = None

    def on_message_complete(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        super().on_message_complete()

    # A request head over MAX_HEAD_BYTES is refused (httptools has no limit of its own).

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

    def _unsupported_upgrade_warning(self) -> None:
        """No WebSockets here ("ws": "none"): an Upgrade request is served as plain HTTP,
        without uvicorn's two warning lines per request, which a client could flood the log
        with."""

    def send_400_response(self, msg: str) -> None:
        reason = self._refusal or msg
        self.transport.write(_json_answer("400 Bad Request", f"malformed HTTP request: {reason}"))
        self.transport.close()

    # Draining (SIGTERM, a rolling restart): uvicorn would close an idle keep-alive connection
    # at once, under a client that may be sending its next request on it right then, which
    # fails. It gets a moment instead, and that request an answer saying `Connection: close`;
    # a connection in the middle of a request ends after its answer.

    def shutdown(self) -> None:
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


def _log_refusals(limits: ConnectionLimits) -> None:
    limits.counting_refusals_scheduled = False
    limits.log_refusals()


def server_options() -> dict[str, Any]:
    """Keyword arguments of uvicorn.run / uvicorn.Config shared by every service."""
    return {
        "loop": "uvloop",
        "http": GuardedHttpProtocol,
        # No WebSocket routes: a connection handed to a WebSocket protocol would leave this
        # protocol's accounting (connection_lost would never run for it).
        "ws": "none",
        "log_config": None,
        "access_log": False,
        "server_header": False,
        # On every answer: no content sniffing, no framing by another site, no referrer sent on.
        "headers": [
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            ("Referrer-Policy", "no-referrer"),
        ],
        # X-Forwarded-For is believed from the trusted proxies only (uvicorn's default would
        # believe any local peer: a client could then claim any address, dodging its quotas).
        "proxy_headers": True,
        "forwarded_allow_ips": HttpSettings().pi_jobs_trusted_proxies,
    }
