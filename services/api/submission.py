"""Reading `num` from a submission (form field or JSON), refusing all but a whole number."""

import json
import re
from urllib.parse import parse_qs

from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect, Request
from starlette.types import Message

from services.shared.web import ApiError

_ASCII_WHOLE_NUMBER = re.compile(r"^[0-9]{1,20}$")
_SIMPLE_FORM = re.compile(rb"num=([0-9]{1,20})")
MAX_BODY_BYTES = 16 * 1024


async def read_num(request: Request, max_num: int) -> int:
    """`num` from the request body, whatever its (supported) content type."""
    declared = request.headers.get("content-length", "0")
    if not declared.isdigit():
        raise ApiError(400, "Content-Length must be a whole number")
    if int(declared) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    content_type = request.headers.get("content-type", "")
    body = await _read_capped(request)
    if media_type(content_type) == "multipart/form-data":
        return await _multipart_num(request, body, max_num)
    return parse_num(body, content_type, max_num)


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


async def _multipart_num(request: Request, body: bytes, max_num: int) -> int:
    async def replay_body() -> Message:
        return {"type": "http.request", "body": body, "more_body": False}

    try:
        form = await Request(request.scope, replay_body).form(max_files=0, max_fields=10)
    except MultiPartException as error:
        raise ApiError(400, error.message) from None
    values = form.getlist("num")
    if len(values) > 1:
        raise ApiError(422, "num was given more than once")
    return validate_num(values[0] if values else None, max_num)


def parse_num(body: bytes, content_type: str, max_num: int) -> int:
    if len(body) > MAX_BODY_BYTES:
        raise ApiError(413, f"request body too large: at most {MAX_BODY_BYTES} bytes")
    return validate_num(_raw_num(body, media_type(content_type)), max_num)


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


def _raw_num(body: bytes, kind: str) -> object:
    if kind == "application/json":
        try:
            document = json.loads(body)
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError(400, 'body is not valid JSON; send {"num": 12}') from None
        if not isinstance(document, dict) or "num" not in document:
            raise ApiError(422, 'num is required: send {"num": 12}')
        return document["num"]
    if kind in ("application/x-www-form-urlencoded", ""):
        if simple := _SIMPLE_FORM.fullmatch(body):
            return simple[1].decode()  # the usual body, spared the general parser
        try:
            fields = parse_qs(body.decode("utf-8"), strict_parsing=False)
        except UnicodeDecodeError:
            raise ApiError(400, "form body is not valid UTF-8") from None
        values = fields.get("num")
        if not values:
            raise ApiError(422, "num is required: send num=12 as a form field")
        if len(values) > 1:
            raise ApiError(422, "num was given more than once")
        return values[0]
    raise ApiError(415, 'send num as a form field (num=12) or as JSON ({"num": 12})')
