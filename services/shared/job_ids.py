"""Job ids: 32 hex digits, unique across any number of API replicas with no shared counter."""

import hashlib
import re
import secrets
import time

JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def new_job_id() -> str:
    """48 bits of milliseconds then 80 random bits: ids sort by submission time."""
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def is_job_id(text: str) -> bool:
    return JOB_ID_PATTERN.fullmatch(text) is not None


def idempotent_job_id(key: str, scope: str | None = None) -> str:
    """The same Idempotency-Key gives the same job id on every replica; with a `scope` (an API
    key's owner), each scope has its own."""
    scoped = key if scope is None else f"{scope}\0{key}"
    return hashlib.sha256(b"pi-jobs idempotency key\0" + scoped.encode()).hexdigest()[:32]
