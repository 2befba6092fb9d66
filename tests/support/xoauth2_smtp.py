"""aiosmtpd offering AUTH XOAUTH2 that checks the bearer token like the OAuth2 Dovecot does.

The token must be an HS256 JWT signed with :data:`support.oauth2.KEY`, unexpired,
whose ``sub`` is the user named in the XOAUTH2 string (Google's and Microsoft's
format: ``user=<addr>^Aauth=Bearer <token>^A^A``). Mail is accepted only after AUTH.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from support.oauth2 import KEY
from support.smtp import SmtpServer, SmtpSink


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def valid_token(token: str, user: str) -> bool:
    """The token is ours, unexpired and for ``user``."""
    try:
        header, payload, signature = token.split(".")
        expected = hmac.new(KEY, f"{header}.{payload}".encode(), hashlib.sha256).digest()
        if not hmac.compare_digest(_unb64url(signature), expected):
            return False
        claims = json.loads(_unb64url(payload))
    except ValueError:
        return False
    return claims.get("sub") == user and claims.get("exp", 0) > time.time()


class XOAuth2Sink(SmtpSink):
    """The recording sink, plus the XOAUTH2 mechanism (a handler ``auth_`` method)."""

    def __init__(self) -> None:
        super().__init__()
        self.logins: list[tuple[str, bool]] = []

    async def auth_XOAUTH2(self, _server: Any, args: list[str]) -> AuthResult:  # noqa: N802 - aiosmtpd's name
        try:
            raw = base64.b64decode(args[1]).decode()
            fields = dict(part.split("=", 1) for part in raw.split("\x01") if part)
            user, bearer = fields["user"], fields["auth"]
            token = bearer.removeprefix("Bearer ")
        except (IndexError, ValueError, KeyError):
            return AuthResult(success=False, handled=False)
        ok = valid_token(token, user)
        self.logins.append((user, ok))
        if not ok:
            return AuthResult(
                success=False, handled=False, message="535 5.7.8 Username and Password not accepted"
            )
        return AuthResult(success=True, auth_data=user)

    async def handle_MAIL(  # noqa: N802 - aiosmtpd's hook
        self, _server: Any, session: Any, envelope: Any, address: str, mail_options: list[str]
    ) -> str:
        """Mail only after AUTH (aiosmtpd's auth_required warns without TLS)."""
        if not session.authenticated:
            return "530 5.7.0 Authentication required"
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"


class XOAuth2SmtpServer(SmtpServer):
    """aiosmtpd on loopback (no TLS) requiring AUTH XOAUTH2 before mail."""

    def _make_controller(self) -> Controller:
        if not isinstance(self.sink, XOAuth2Sink):  # the base class made a plain one
            self.sink = XOAuth2Sink()
        return Controller(
            self.sink,
            hostname=self.host,
            port=self.port,
            auth_require_tls=False,
            auth_exclude_mechanism=["LOGIN", "PLAIN"],
        )
