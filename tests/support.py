"""Helpers for tests: waiting on a condition against a deadline, an independent pi."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from functools import cache
from typing import TypeVar

import mpmath

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
