"""What every refusal of the public address looks like, and the requests that provoke them:
shared by the in-process tests of the API and the end-to-end ones."""

from collections.abc import Collection

import httpx

FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
MULTIPART = "multipart/form-data; boundary=BOUNDARY"
MAX_NUM = 1_000_000_000  # PI_JOBS_MAX_NUM's default
MAX_BODY = 16 * 1024  # services.api.submission.MAX_BODY_BYTES
UNKNOWN_ID = "ffffffffffffffffffffffffffffffff"  # a well-formed job id no job has


def assert_error(response: httpx.Response, statuses: Collection[int]) -> None:
    """A refusal: one of `statuses`, body exactly {"success": false, "error": "<message>"}."""
    request = f"{response.request.method} {response.request.url.raw_path!r}"
    shown = f"{request} -> {response.status_code} {response.text[:300]!r}"
    assert response.status_code in statuses, shown
    assert response.headers.get("content-type", "").startswith("application/json"), shown
    body = response.json()
    assert isinstance(body, dict) and set(body) == {"success", "error"}, shown
    assert body["success"] is False, shown
    assert isinstance(body["error"], str) and body["error"].strip(), shown


def multipart(*parts: tuple[bytes, bytes], boundary: bytes = b"BOUNDARY") -> bytes:
    """A multipart/form-data body of (Content-Disposition parameters, value) parts."""
    body = b"".join(
        b"--"
        + boundary
        + b"\r\nContent-Disposition: form-data; "
        + disposition
        + b"\r\n\r\n"
        + value
        + b"\r\n"
        for disposition, value in parts
    )
    return body + b"--" + boundary + b"--\r\n"
