"""Helpers for tests: waiting on a condition against a deadline, an independent pi, spans and
an OTLP endpoint that keeps them."""

import asyncio
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypeVar

import mpmath
from opentelemetry.sdk.trace import ReadableSpan

_T = TypeVar("_T")


def wait_until(check: Callable[[], _T | None], timeout: float, what: str) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


async def wait_until_async(
    check: Callable[[], Awaitable[_T | None]], timeout: float, what: str
) -> _T:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


@cache
def reference_pi_text(num: int) -> str:
    """`3.` and `num` decimals from mpmath, a library independent of our digit engine."""
    with mpmath.workdps(num + 30):
        text: str = mpmath.nstr(+mpmath.pi, num + 20, strip_zeros=False)
    return text[: num + 2]


def trace_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.trace_id)


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return int(span.context.span_id)


def parent_id(span: ReadableSpan) -> int | None:
    return None if span.parent is None else int(span.parent.span_id)


OtlpPosts = list[tuple[str, str, bytes]]  # (path, content type, body) of each POST


@contextmanager
def otlp_collector() -> Iterator[tuple[str, OtlpPosts]]:
    """An OTLP/HTTP endpoint on a free port that keeps what it is sent: (its URL, the posts)."""
    received: OtlpPosts = []

    class Collect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((self.path, self.headers["Content-Type"], body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Collect)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", received
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def reference_pi_hex(num: int) -> str:
    """`3` and `num` hexadecimal digits after the point (lower case), from mpmath."""
    with mpmath.workprec(4 * num + 64):
        scaled = int(mpmath.floor(mpmath.pi * mpmath.mpf(16) ** num))
    return format(scaled, "x")


# The Pi API's published first 100 hexadecimal digits (pi.delivery, GET /v1/pi?radix=16).
PI_API_FIRST_100_HEX = (
    "3243f6a8885a308d313198a2e03707344a4093822299f31d0082efa98ec4e6c8"
    "9452821e638d01377be5466cf34e90c6cc0a"
)
