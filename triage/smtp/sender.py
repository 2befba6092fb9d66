"""SMTP delivery with aiosmtplib: implicit TLS, STARTTLS or plain; AUTH; timeouts.

Security (RFC 8314 / RFC 3207):

- ``tls``: TLS from the first byte (port 465).
- ``starttls``: plain connect, then STARTTLS is REQUIRED. If the server does not
  offer it (or refuses it with 5xx) the session fails with
  :class:`~triage.errors.SendAuthError`; a failed handshake or a 454 with
  :class:`SmtpSessionError`. Triage never falls back to sending in plaintext.
- ``none``: plaintext (a local relay only).

Certificates are verified against the system CAs plus the optional ``ca_file``;
``tls_verify = false`` switches verification off and is logged as a warning at
every connection. The password is read from ``password_env``/``password_file``
at each connection (so a rotated secret is picked up) and never logged. With
``auth = "xoauth2"`` (Gmail, Microsoft 365) the session authenticates with SASL
XOAUTH2 and an access token from the ``[oauth2]`` sign-in, fetched (and
refreshed when due) at each connection.

A refused login or security is :class:`~triage.errors.SendAuthError`, never a
temporary error: 5xx or 432 to AUTH (RFC 4954 section 6), 530/534/535/538 to
MAIL, RCPT or DATA (the server wants AUTH or TLS first), no AUTH offered while a
username is set, STARTTLS not offered or refused (5xx), an XOAUTH2 sign-in that
is gone, a password source that cannot be read. 454 to AUTH or STARTTLS
(temporary failure, RFC 4954 / RFC 3207) stays temporary.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Callable
from typing import Any, Literal

import aiosmtplib

from triage.errors import (
    ConfigError,
    OAuth2Error,
    OAuth2UnreachableError,
    PermanentSendError,
    SendAuthError,
    SendError,
    TemporarySendError,
)
from triage.logs import get_logger
from triage.smtp.base import OutgoingMail, SendReceipt

__all__ = ["AUTH_REFUSED_CODES", "SmtpSender", "SmtpSessionError", "classify_reply"]


def log() -> Any:
    """The module's logger, bound at each call so it follows the logging configuration.

    (A logger bound once at import keeps the processors of that moment, and misses a
    later configure_logging or structlog.testing.capture_logs.)
    """
    return get_logger("triage.smtp")


Security = Literal["tls", "starttls", "none"]

_CLOSE_WAIT = 2.0
"""Seconds to wait for a closed connection to be gone (a TLS close_notify exchange)."""


AUTH_REFUSED_CODES = frozenset({530, 534, 535, 538})
"""Replies to MAIL, RCPT or DATA that mean "log in (or encrypt) first" or "your login is
refused" (RFC 4954 section 6): the configuration is wrong, not the mail."""


class SmtpSessionError(TemporarySendError):
    """No usable SMTP session: connection refused, timeout, TLS failure, greeting/EHLO/AUTH refused.

    Temporary: nothing about the mail itself was judged. The dispatcher defers the
    other mail of its pass instead of trying each one against a server that is down.
    """


def classify_reply(code: int, message: str) -> SendError:
    """Turn an SMTP reply to MAIL, RCPT or DATA into the error to raise.

    RFC 5321 section 4.2.1: 4yz is a transient negative completion (retry later),
    5yz a permanent one. Any other code is treated as transient.

    Returns:
        PermanentSendError for 5xx, TemporarySendError otherwise; the message is
        ``"<code> <server text>"``.
    """
    text = f"{code} {' '.join(message.split())}".strip()
    if 500 <= code <= 599:
        return PermanentSendError(text, code=code)
    return TemporarySendError(text, code=code)


def _has_non_ascii(*addresses: str) -> bool:
    return any(not a.isascii() for a in addresses)


class SmtpSender:
    """Delivers mail over SMTP; keeps one session open between ``send`` calls until ``aclose``.

    One mail at a time: a sender is used by one task (the dispatcher), not
    concurrently; give each worker its own.

    Args:
        host: server name; also the name the TLS certificate must carry.
        port: TCP port (465 tls, 587 starttls, 25 none, typically).
        security: ``tls`` | ``starttls`` | ``none`` (see the module docstring).
        username: AUTH user; "" sends no AUTH.
        password: a callable returning the password (read from the secret at each
            connection); required when ``username`` is set and ``auth`` is password.
        auth: ``password`` (AUTH PLAIN/LOGIN) or ``xoauth2`` (the SASL XOAUTH2 of
            Google and Microsoft).
        token: for ``xoauth2``, a callable returning a fresh access token (blocking;
            run in a worker thread); OAuth2UnreachableError ends the session with
            SmtpSessionError (temporary), another OAuth2Error (the sign-in gone or
            refused) with SendAuthError.
        ca_file: an extra CA bundle (PEM) trusted besides the system CAs; "" for none.
        tls_verify: verify the server certificate and host name (default). False is
            logged as a warning at each connection.
        timeout: seconds for connecting and for each SMTP command.
        local_hostname: name given in EHLO; None lets aiosmtplib use the machine's FQDN.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security = "starttls",
        username: str = "",
        password: Callable[[], str] | None = None,
        ca_file: str = "",
        tls_verify: bool = True,
        timeout: float = 30.0,
        local_hostname: str | None = None,
        auth: Literal["password", "xoauth2"] = "password",
        token: Callable[[], str] | None = None,
    ) -> None:
        if username and auth == "password" and password is None:
            raise ConfigError("smtp: username is set but no password_env or password_file")
        if auth == "xoauth2" and (not username or token is None):
            raise ConfigError("smtp.auth: 'xoauth2' needs username and an [oauth2] sign-in")
        self.auth = auth
        self._token = token
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self._password = password
        self.ca_file = ca_file
        self.tls_verify = tls_verify
        self.timeout = timeout
        self.local_hostname = local_hostname
        self._client: aiosmtplib.SMTP | None = None

    def __repr__(self) -> str:
        return f"SmtpSender({self.host}:{self.port}, security={self.security})"

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS context: system CAs plus ``ca_file``; verification unless disabled.

        Raises:
            ConfigError: ``ca_file`` cannot be read as PEM certificates.
        """
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.ca_file:
            try:
                context.load_verify_locations(cafile=self.ca_file)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"smtp.ca_file: cannot load {self.ca_file}: {exc}") from None
        if not self.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _connect(self) -> aiosmtplib.SMTP:
        if self._client is not None and self._client.is_connected:
            return self._client
        self._client = None
        where = f"{self.host}:{self.port}"
        try:
            context = self.tls_context() if self.security != "none" else None
        except ConfigError as exc:
            raise SmtpSessionError(str(exc)) from None
        if self.security != "none" and not self.tls_verify:
            log().warning("smtp_tls_unverified", server=where, security=self.security)
        if self.security == "none" and self.username:
            log().warning("smtp_plaintext_auth", server=where)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.security == "tls",
            start_tls=False,  # done in _open, to tell "not offered" from a failure
            tls_context=context,
            timeout=self.timeout,
            local_hostname=self.local_hostname,
        )
        try:
            await self._open(client, where)
        except Exception as exc:
            error = self._session_error(exc, where)
            if error is None:
                raise
            # Still in a session after a refused AUTH or command: end it with QUIT.
            await _discard(client, polite=isinstance(exc, aiosmtplib.SMTPResponseException))
            raise error from None
        self._client = client
        return client

    def _session_error(self, exc: Exception, where: str) -> SendError | None:
        """The error for a failure while opening a session; None if not ours.

        SendAuthError for a refused login or security (retrying cannot help),
        SmtpSessionError (temporary) for everything else.
        """
        if isinstance(exc, SmtpSessionError | SendAuthError):
            return exc
        if isinstance(exc, aiosmtplib.SMTPAuthenticationError):
            text = f"{where}: AUTH refused for {self.username}: {exc.code} {_oneline(exc.message)}"
            if _login_refused(exc.code):
                return SendAuthError(text, code=exc.code)
            return SmtpSessionError(text, code=exc.code)
        if isinstance(exc, aiosmtplib.SMTPResponseException):
            return SmtpSessionError(
                f"{where}: session refused: {exc.code} {exc.message}", code=exc.code
            )
        if isinstance(exc, ssl.SSLError):
            return SmtpSessionError(f"{where}: TLS handshake failed: {exc}")
        if isinstance(exc, aiosmtplib.SMTPException | OSError | TimeoutError):
            return SmtpSessionError(f"{where}: {_describe(exc)}")
        return None

    async def _open(self, client: aiosmtplib.SMTP, where: str) -> None:
        """Connect (with TLS as configured) and log in; raw aiosmtplib errors escape.

        Raises SendAuthError itself for what no retry can fix (module docstring).
        """
        await client.connect()
        if self.security == "starttls":
            await client.ehlo()
            if not client.supports_extension("starttls"):
                raise SendAuthError(
                    f"{where}: the server does not offer STARTTLS, which smtp.security ="
                    " 'starttls' requires (triage never sends in plaintext)"
                )
            try:
                await client.starttls()
            except aiosmtplib.SMTPResponseException as exc:
                text = f"{where}: STARTTLS refused: {exc.code} {_oneline(exc.message)}"
                if 500 <= exc.code <= 599:
                    raise SendAuthError(text, code=exc.code) from None
                raise SmtpSessionError(text, code=exc.code) from None
        if self.security != "none" and client.get_transport_info("sslcontext") is None:
            # aiosmtplib raises when STARTTLS fails; this guards the promise anyway.
            raise SmtpSessionError(f"{where}: TLS was required but the session is not encrypted")
        if not self.username:
            return
        await client.ehlo()  # the extensions as offered now (after STARTTLS, RFC 3207 4.2)
        if not client.supports_extension("auth"):
            raise SendAuthError(
                f"{where}: the server offers no AUTH, but smtp.username is set ({self.username});"
                " remove smtp.username for a relay that needs no login, or use the"
                " submission port with TLS"
            )
        if self.auth == "xoauth2":
            assert self._token is not None  # noqa: S101 - checked in __init__
            try:
                token = await asyncio.to_thread(self._token)
            except OAuth2UnreachableError as exc:
                raise SmtpSessionError(f"{where}: XOAUTH2 for {self.username}: {exc}") from None
            except (OAuth2Error, ConfigError) as exc:  # sign-in gone, refused, cache unusable
                raise SendAuthError(f"{where}: XOAUTH2 for {self.username}: {exc}") from None
            await client.auth_xoauth2(self.username, token)
            return
        assert self._password is not None  # noqa: S101 - checked in __init__
        try:
            secret = self._password()
        except ConfigError as exc:
            raise SendAuthError(str(exc)) from None
        try:
            await client.login(self.username, secret)
        except aiosmtplib.SMTPResponseException:
            raise
        except aiosmtplib.SMTPException as exc:  # no mechanism both sides know
            raise SendAuthError(
                f"{where}: no AUTH mechanism usable for {self.username}: {exc.message}"
                f" (the server offers {', '.join(client.server_auth_methods) or 'none'})"
            ) from None

    async def send(self, mail: OutgoingMail) -> SendReceipt:
        """Deliver ``mail`` to its envelope recipients (never to addresses in its headers).

        Returns:
            The server's reply to DATA and any recipients it refused while
            accepting the others.

        Raises:
            SendAuthError: the login or the security it needs was refused, or the
                server wants a login first (530/534/535/538): not temporary.
            SmtpSessionError: no session (see the class docstring); temporary.
            TemporarySendError: 4xx reply to MAIL, RCPT or DATA.
            PermanentSendError: 5xx reply (every recipient refused permanently), or
                an address SMTP cannot carry.
        """
        if not mail.rcpt_to:
            raise PermanentSendError("the mail has no envelope recipient")
        try:
            return await self._send(mail)
        except TemporarySendError as exc:
            if exc.code != 421:
                raise
        # 421: the server ends the session (its limit of mail per connection, or it is
        # shutting down); nothing was accepted. Once more on a new session.
        self._client, client = None, self._client
        if client is not None:
            await _discard(client, polite=False)
        return await self._send(mail)

    async def _send(self, mail: OutgoingMail) -> SendReceipt:
        client = await self._connect()
        options = ["SMTPUTF8"] if _has_non_ascii(mail.mail_from, *mail.rcpt_to) else None
        try:
            refused, reply = await client.sendmail(
                mail.mail_from, list(mail.rcpt_to), mail.raw, mail_options=options
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [r.code for r in exc.recipients]
            text = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients)
            if codes and all(c in AUTH_REFUSED_CODES for c in codes):
                raise self._refused_in_mail(codes[0], text) from None
            if codes and all(500 <= c <= 599 for c in codes):
                raise PermanentSendError(text, code=codes[0]) from None
            raise TemporarySendError(text, code=codes[0] if codes else None) from None
        except aiosmtplib.SMTPResponseException as exc:
            if exc.code in AUTH_REFUSED_CODES:
                raise self._refused_in_mail(exc.code, _oneline(exc.message)) from None
            raise classify_reply(exc.code, exc.message) from None
        except aiosmtplib.SMTPNotSupported as exc:
            raise PermanentSendError(f"{exc.message}") from None
        except ValueError as exc:
            raise PermanentSendError(f"address cannot be sent over SMTP: {exc}") from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            self._client = None
            await _discard(client, polite=False)
            raise SmtpSessionError(f"{self.host}:{self.port}: {_describe(exc)}") from None
        return SendReceipt(
            reply=reply,
            refused={addr: f"{r.code} {r.message}" for addr, r in refused.items()},
        )

    def _refused_in_mail(self, code: int, text: str) -> SendAuthError:
        """530/534/535/538 to MAIL, RCPT or DATA: the server wants a login (or TLS) first."""
        login = f"the login as {self.username}" if self.username else "no login (smtp.username)"
        return SendAuthError(
            f"{self.host}:{self.port}: the server refused the mail for want of"
            f" authentication: {code} {text} (configured: {login}, security {self.security})",
            code=code,
        )

    async def verify(self) -> None:
        """Open a session (TLS and AUTH as configured), then QUIT: a login check.

        Raises:
            SmtpSessionError: as for :meth:`send` when no session can be had.
        """
        await self._connect()
        await self.aclose()

    async def aclose(self) -> None:
        """End the session with QUIT (closing the socket if QUIT fails)."""
        client, self._client = self._client, None
        if client is not None:
            await _discard(client, polite=True)


async def _discard(client: aiosmtplib.SMTP, *, polite: bool) -> None:
    """Close ``client``'s connection (QUIT first when ``polite``) and let it finish closing.

    Closing a TLS connection exchanges close_notify alerts, which needs the event
    loop to run; without the short wait below a caller that ends its loop right
    away (``asyncio.run``, ``triage poll --once``) would leave the socket open.
    """
    protocol = client.protocol
    if polite and client.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError, TimeoutError):
            await client.quit()  # closes the transport after the 221 reply
    client.close()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + _CLOSE_WAIT
    # aiosmtplib offers no public "closed" awaitable; its protocol drops .transport
    # in connection_lost.
    while protocol is not None and protocol.transport is not None and loop.time() < deadline:  # noqa: ASYNC110 - see above
        await asyncio.sleep(0.01)


def _login_refused(code: int) -> bool:
    """A reply to AUTH that no retry with the same credentials can turn around.

    RFC 4954 section 6: 5xx (535 invalid credentials, 534 mechanism too weak, 538
    encryption required, 530 authentication required) and 432 (a password
    transition is needed: a person must act). Other 4xx, 454 above all (temporary
    authentication failure), are temporary.
    """
    return 500 <= code <= 599 or code == 432


def _oneline(text: str) -> str:
    return " ".join(str(text).split())


def _describe(exc: BaseException) -> str:
    """A one-line description of a connection-level failure."""
    if isinstance(exc, aiosmtplib.SMTPException):
        text = exc.message
        cause = exc.__cause__
        if cause is not None and str(cause) and str(cause) not in text:
            text = f"{text} ({cause})"
        return text
    if isinstance(exc, TimeoutError):
        return "timed out"
    return f"{type(exc).__name__}: {exc}"
