"""Job ids: unique across any number of API replicas without a shared counter.

48 bits of milliseconds then 80 random bits, as 32 hex digits: ids sort by submission time.
"""

import re
import secrets
import time

JOB_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")


def new_job_id() -> str:
    return f"{time.time_ns() // 1_000_000:012x}{secrets.token_hex(10)}"


def is_job_id(text: str) -> bool:
    return JOB_ID_PATTERN.fullmatch(text) is not None
