"""What keeps other sites' pages from using a visitor's browser against this API.

A state-changing request (POST, DELETE...) sent by a page of another site is refused with a
403: browsers say where a request comes from (`Origin`, `Sec-Fetch-Site`), while curl and
scripts send neither and are unaffected. Origins named in `PI_JOBS_ALLOWED_ORIGINS` may call
the API from their pages (CORS). The headers every response carries (nosniff, no framing, no
referrer) are set by the HTTP server itself; the page adds its Content-Security-Policy.
"""

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.shared.web import error_response

_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
_SAME_SITE = frozenset({"same-origin", "none"})  # "none": typed in the address bar, a bookmark
_ALLOWED_METHODS = "GET, HEAD, POST, DELETE"
_ALLOWED_HEADERS = "Authorization, Content-Type, Idempotency-Key, If-None-Match, Range"
# Content-Security-Policy of the web page: its own scripts, styles and calls only.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


class BrowserSafety:
    def __init__(self, app: ASGIApp, allowed_origins: frozenset[str]) -> None:
        self._app = app
        self._allowed = allowed_origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or (scope["method"] in _SAFE_METHODS and not self._allowed):
            await self._app(scope, receive, send)  # the reads clients make most: nothing to do
            return
        headers = Headers(scope=scope)
        origin = headers.get("origin")
        allowed = origin is not None and origin in self._allowed
        method = scope["method"]
        if method == "OPTIONS" and allowed and "access-control-request-method" in headers:
            await _preflight(str(origin), send)
            return
        if method not in _SAFE_METHODS and not allowed and _from_another_site(scope, headers):
            refused = error_response(
                403, "refused: a request from another site's page may not change anything here"
            )
            await refused(scope, receive, send)
            return
        if not allowed:
            await self._app(scope, receive, send)
            return

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start" and not _public(message):
                message["headers"] = [
                    *message.get("headers", []),
                    (b"access-control-allow-origin", str(origin).encode("latin-1")),
                    (b"access-control-expose-headers", b"ETag, Retry-After, Content-Disposition"),
                    (b"vary", b"Origin"),
                ]
            await send(message)

        await self._app(scope, receive, send_with_cors)


def _public(start: Message) -> bool:
    """Whether a response already lets every origin read it (public digits, /v1/pi)."""
    return any(name.lower() == b"access-control-allow-origin" for name, _ in start["headers"])


def _from_another_site(scope: Scope, headers: Headers) -> bool:
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in _SAME_SITE
    origin = headers.get("origin")
    if origin is None:
        return False  # not a browser's cross-origin request: curl, scripts, old browsers' GETs
    own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
    return origin != own


async def _preflight(origin: str, send: Send) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"access-control-allow-origin", origin.encode("latin-1")),
                (b"access-control-allow-methods", _ALLOWED_METHODS.encode()),
                (b"access-control-allow-headers", _ALLOWED_HEADERS.encode()),
                (b"access-control-max-age", b"600"),
                (b"vary", b"Origin"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
