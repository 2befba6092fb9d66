"""Headers on every response and the cross-origin check on every state change.

Pure ASGI middleware (no buffering, so server-sent events stream through):

- every response gets the strict page CSP of WEB.md, ``X-Content-Type-Options:
  nosniff``, ``Referrer-Policy: same-origin`` and ``X-Frame-Options: DENY``
  unless the endpoint set its own (attachments set a stricter CSP);
- a request that may change state (any method but GET, HEAD, OPTIONS) must come
  from our own origin: ``Sec-Fetch-Site: same-origin`` (Fetch Metadata, W3C), or
  when a browser sends no Fetch Metadata, an ``Origin`` equal to the page's
  origin (OWASP CSRF cheat sheet, "Verifying origin with standard headers").
  Anything else is refused with 403 before the endpoint runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

__all__ = ["CSP", "SAFE_METHODS", "SecurityMiddleware", "cross_origin_problem", "page_headers"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
"""The page CSP (WEB.md): no inline script or style, nothing from other origins."""

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def page_headers() -> list[tuple[bytes, bytes]]:
    """The security headers every response carries (unless it set its own)."""
    return [
        (b"content-security-policy", CSP.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"same-origin"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-opener-policy", b"same-origin"),
    ]


def cross_origin_problem(method: str, headers: dict[str, str], origin: str) -> str | None:
    """Why a request must be refused as cross-origin, or None when it may proceed.

    Args:
        method: the HTTP method.
        headers: request headers, names lowercased.
        origin: the page's own origin, ``scheme://host[:port]``, lowercase.
    """
    if method.upper() in SAFE_METHODS:
        return None
    site = headers.get("sec-fetch-site")
    if site is not None:
        if site == "same-origin":
            return None
        return f"cross-site request refused (Sec-Fetch-Site: {site})"
    sent = headers.get("origin")
    if sent is None:
        return "request without Origin or Sec-Fetch-Site refused"
    if sent.rstrip("/").lower() == origin:
        return None
    return "cross-origin request refused (Origin does not match the page)"


class SecurityMiddleware:
    """ASGI middleware adding :func:`page_headers` and refusing cross-origin changes."""

    def __init__(self, app: ASGIApp, *, origin: str) -> None:
        self.app = app
        self.origin = origin.rstrip("/").lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Handle one ASGI call."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {
            k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])
        }
        problem = cross_origin_problem(scope.get("method", "GET"), headers, self.origin)
        if problem is not None:
            body = (problem + "\n").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 403,
                    "headers": [
                        (b"content-type", b"text/plain; charset=utf-8"),
                        (b"content-length", str(len(body)).encode()),
                        *page_headers(),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return

        # Pages hold client mail: never kept by the browser's cache (Back after logout
        # on a shared computer must not show a ticket). The static files may be cached.
        private = not str(scope.get("path", "")).startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                wanted = [*page_headers()]
                if private:
                    wanted.append((b"cache-control", b"no-store"))
                extra = [(k, v) for k, v in wanted if k not in present]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)
