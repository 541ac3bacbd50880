"""Reading a submission (form fields or JSON): `num`, a whole number, and `radix`, 10 (the
default) or 16; anything else is refused."""

import json
import re
from collections.abc import Mapping, Sequence
from typing import NamedTuple
from urllib.parse import parse_qs

from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from services.shared.events import Radix
from services.shared.web import ApiError

_ASCII_WHOLE_NUMBER = re.compile(r"^[0-9]{1,20}$")
_SIMPLE_FORM = re.compile(rb"num=([0-9]{1,20})")
MAX_BODY_BYTES = 16 * 1024
_FORM_TYPES = ("application/x-www-form-urlencoded", "")


class Submission(NamedTuple):
    num: int
    radix: Radix = 10


async def read_submission(request: Request, max_num: int) -> Submission:
    """What the request body asks for, whatever its (supported) content type."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit():
        raise ApiError(400, "Content-Length must be a whole number")
    if int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    content_type = request.headers.get("content-type", "")
    body = await _read_capped(request)
    if media_type(content_type) == "multipart/form-data":
        return await _multipart_submission(request, body, max_num)
    return parse_submission(body, content_type, max_num)


async def _read_capped(request: Request) -> bytes:
    """The body, refused as soon as it outgrows the cap (a chunked body has no length)."""
    body = bytearray()
    try:
        async for piece in request.stream():
            body += piece
            if len(body) > MAX_BODY_BYTES:
                raise ApiError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    except ClientDisconnect:
        raise ApiError(400, "the request body ended early") from None
    return bytes(body)


async def _multipart_submission(request: Request, body: bytes, max_num: int) -> Submission:
    async def replay_body() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay_body).form(max_files=0, max_fields=10)
    except MultiPartException as error:
        raise ApiError(400, error.message) from None
    fields = {name: form.getlist(name) for name in ("num", "radix")}
    return _validated(_one_each(fields), max_num)


def parse_submission(body: bytes, content_type: str, max_num: int) -> Submission:
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    kind = media_type(content_type)
    if kind in _FORM_TYPES and (simple := _SIMPLE_FORM.fullmatch(body)):
        return Submission(validate_num(simple[1].decode(), max_num))  # the usual body, spared
    return _validated(_raw_fields(body, kind), max_num)


def _validated(fields: dict[str, object], max_num: int) -> Submission:
    if "num" not in fields:
        raise ApiError(422, 'num is required: send num=12 as a form field, or {"num": 12}')
    return Submission(validate_num(fields["num"], max_num), validate_radix(fields.get("radix")))


def media_type(content_type: str) -> str:
    return content_type.split(";")[0].strip().lower()


def validate_num(raw: object, max_num: int) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int | str):
        raise ApiError(422, "num must be a whole number, like 12")
    text = str(raw).strip()
    if not _ASCII_WHOLE_NUMBER.fullmatch(text):
        raise ApiError(422, f"num must be a whole number from 1 to {max_num}")
    num = int(text)
    if not 1 <= num <= max_num:
        raise ApiError(422, f"num must be a whole number from 1 to {max_num}, got {text}")
    return num


def validate_radix(raw: object) -> Radix:
    """10 when not given; 10 or 16 as a number or as text."""
    if raw is None or raw == "":
        return 10
    if raw in (16, "16"):
        return 16
    if raw in (10, "10"):
        return 10
    raise ApiError(422, f"radix must be 10 or 16, got {str(raw)[:40]!r}")


def _raw_fields(body: bytes, kind: str) -> dict[str, object]:
    """The submission's fields, unchecked; only num and radix are read."""
    if kind == "application/json":
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError(400, 'body is not valid JSON; send {"num": 12}') from None
        if not isinstance(document, dict):
            raise ApiError(422, 'num is required: send {"num": 12}')
        return {name: document[name] for name in ("num", "radix") if name in document}
    if kind in _FORM_TYPES:
        try:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
        except UnicodeDecodeError:
            raise ApiError(400, "form body is not valid UTF-8") from None
        return _one_each({name: fields.get(name, []) for name in ("num", "radix")})
    raise ApiError(415, 'send num as a form field (num=12) or as JSON ({"num": 12})')


def _one_each(fields: Mapping[str, Sequence[object]]) -> dict[str, object]:
    for name, values in fields.items():
        if len(values) > 1:
            raise ApiError(422, f"{name} was given more than once")
    return {name: values[0] for name, values in fields.items() if values}
