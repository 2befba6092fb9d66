"""A real aiosmtpd SMTP server on loopback that records what it receives.

``replies`` lets a test script the server's answers to DATA (e.g. two ``451``
then ``250``), a fault a well-behaved real server shows on demand.
"""

from __future__ import annotations

import ssl
import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from support.ports import free_port


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    tls: bool = False
    """The session was encrypted (STARTTLS or implicit TLS)."""

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.content, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    """Handler: appends accepted mail to ``messages``; answers from ``replies`` first."""

    messages: list[Received] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    attempts: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    arrived: threading.Condition = field(init=False)

    def __post_init__(self) -> None:
        self.arrived = threading.Condition(self.lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        transport = getattr(server, "transport", None)
        tls = getattr(session, "ssl", None) is not None or (
            transport is not None and transport.get_extra_info("sslcontext") is not None
        )
        with self.lock:
            self.attempts += 1
            if self.replies:
                reply = self.replies.pop(0)
                if not reply.startswith("250"):
                    return reply
            self.messages.append(
                Received(envelope.mail_from, list(envelope.rcpt_tos), bytes(envelope.content), tls)
            )
            self.arrived.notify_all()
        return "250 OK"

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until at least ``count`` messages arrived (or the timeout); return them."""
        with self.arrived:
            self.arrived.wait_for(lambda: len(self.messages) >= count, timeout)
            return list(self.messages)


class SmtpServer:
    """aiosmtpd Controller on a free loopback port; STARTTLS offered when a cert is given.

    ``implicit_tls=True`` speaks TLS from the first byte instead (like port 465).
    ``auth=(user, password)`` offers AUTH PLAIN/LOGIN (after TLS) and accepts only
    that pair; ``auth_attempts`` records the user names tried. ``auth_reply``
    (e.g. ``"454 4.7.0 Temporary authentication failure"``) answers every AUTH
    with that reply instead; ``auth_required=True`` answers ``530 5.7.0`` to MAIL
    until the client logged in (aiosmtpd's own refusal).
    ``stop()`` then ``start()`` brings the server back on the same port (a fresh
    Controller: aiosmtpd's cannot be restarted) with the same sink.
    """

    def __init__(
        self,
        certfile: str | None = None,
        keyfile: str | None = None,
        *,
        implicit_tls: bool = False,
        auth: tuple[str, str] | None = None,
        auth_reply: str | None = None,
        auth_required: bool = False,
    ) -> None:
        self.port = free_port()
        self.host = "127.0.0.1"
        self.sink = SmtpSink()
        self.auth = auth
        self.auth_reply = auth_reply
        self.auth_required = auth_required
        self.auth_attempts: list[str] = []
        self._tls_context = None
        if certfile and keyfile:
            self._tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self._tls_context.load_cert_chain(certfile, keyfile)
        self.implicit_tls = implicit_tls and self._tls_context is not None
        self.controller = self._make_controller()
        self.running = False
        self._used = False

    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        login = data.login.decode() if isinstance(data.login, bytes) else str(data.login)
        password = data.password.decode() if isinstance(data.password, bytes) else data.password
        self.auth_attempts.append(login)
        if self.auth_reply is not None:
            return AuthResult(success=False, handled=False, message=self.auth_reply)
        ok = self.auth is not None and (login, password) == self.auth
        # handled=False: aiosmtpd itself answers 235 or 535.
        return AuthResult(success=ok, handled=False)

    def _make_controller(self) -> Controller:
        kwargs: dict[str, Any] = {}
        if self.implicit_tls:
            kwargs["ssl_context"] = self._tls_context
        else:
            kwargs["tls_context"] = self._tls_context
            kwargs["require_starttls"] = False
        if self.auth is not None or self.auth_reply is not None:
            kwargs["authenticator"] = self._authenticate
            kwargs["auth_require_tls"] = not self.implicit_tls
        if self.auth_required:
            kwargs["auth_required"] = True
        return Controller(self.sink, hostname=self.host, port=self.port, **kwargs)

    def start(self) -> None:
        if self.running:
            return
        if self._used:
            self.controller = self._make_controller()
        self.controller.start()
        self._used = True
        self.running = True

    def stop(self) -> None:
        if self.running:
            self.controller.stop()
            self.running = False
