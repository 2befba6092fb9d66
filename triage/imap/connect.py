"""The one factory for IMAP connections: TLS, STARTTLS or plain, then LOGIN or XOAUTH2.

:class:`ImapConnector` turns :class:`~triage.config.ImapSettings` into a
connected, logged-in :class:`imapclient.IMAPClient`:

- ``security = "tls"``: implicit TLS (RFC 8314 section 3.2, port 993);
  ``"starttls"``: plain connection upgraded with STARTTLS (RFC 3501 section
  6.2.1) — if the server does not offer it the connection is refused, never
  continued in clear text; ``"none"``: clear text (loopback and tests).
- Certificates are verified against the system CAs plus the optional
  ``ca_file``, with host-name checking. ``tls_verify = false`` switches that
  off and is logged as a warning at every connection.
- ``auth = "password"``: LOGIN with the password read from ``password_env`` or
  ``password_file`` at each connection (a rotated secret is picked up);
  ``auth = "xoauth2"``: SASL XOAUTH2 (Gmail, Microsoft 365) with an access
  token read from ``oauth2_token_file``, printed by ``oauth2_token_command``, or
  from the ``[oauth2]`` sign-in (:mod:`triage.oauth2`, refreshed silently).

Secrets never reach a log line or an exception message. Errors are
:class:`~triage.errors.MailboxError` (unreachable, TLS refused, dropped) or
:class:`~triage.errors.MailboxAuthError` (credentials refused).
"""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from pathlib import Path

import structlog
from imapclient import IMAPClient, SocketTimeout
from imapclient.exceptions import LoginError

from triage.config import ImapSettings
from triage.errors import (
    ConfigError,
    MailboxAuthError,
    MailboxConnectionError,
    MailboxError,
    OAuth2Error,
    SignInRequiredError,
)
from triage.secrets import read_secret, run_token_command

__all__ = [
    "ImapConnector",
    "as_mailbox_error",
    "enable_tcp_keepalive",
    "is_connection_failure",
    "shutdown_socket",
]

log = structlog.get_logger("triage.imap")

# imaplib (under imapclient) logs every command it sends at DEBUG, LOGIN arguments
# included. Keep that logger above DEBUG whatever the root level is.
logging.getLogger("imapclient.imaplib").setLevel(logging.INFO)

CONNECTION_ERRORS: tuple[type[BaseException], ...] = (OSError, EOFError, imaplib.IMAP4.abort)
"""What a dropped, reset, timed-out or half-open connection raises (socket.timeout and
ssl.SSLError are OSErrors; imaplib raises ``abort`` on EOF and on ``* BYE``)."""


def is_connection_failure(exc: BaseException) -> bool:
    """True when ``exc`` means the connection is gone (reconnect), not a refused command."""
    return isinstance(exc, CONNECTION_ERRORS)


def as_mailbox_error(exc: BaseException, doing: str, *, where: str = "") -> MailboxError:
    """Translate an imapclient, imaplib, ssl or socket error into a :class:`MailboxError`:
    a :class:`MailboxConnectionError` (retryable) for a timeout, a failed or dropped
    connection; a plain :class:`MailboxError` for TLS and refused commands.

    Args:
        exc: the error caught.
        doing: what was attempted, e.g. ``"fetching UIDs 5:9 of INBOX"``.
        where: ``host:port`` for connection errors.

    The message names the failure without any secret.
    """
    if isinstance(exc, MailboxError):
        return exc
    at = f" ({where})" if where else ""
    if isinstance(exc, ssl.SSLCertVerificationError):
        return MailboxError(
            f"{doing}{at}: the server's TLS certificate is not trusted ({exc.verify_message});"
            " set imap.ca_file to the CA that signed it"
        )
    if isinstance(exc, ssl.SSLError):
        return MailboxError(f"{doing}{at}: TLS failed: {exc.reason or exc}")
    if isinstance(exc, TimeoutError):
        return MailboxConnectionError(f"{doing}{at}: timed out (no answer from the server)")
    if isinstance(exc, OSError):
        reason = exc.strerror or type(exc).__name__
        return MailboxConnectionError(f"{doing}{at}: connection failed: {reason}")
    if isinstance(exc, imaplib.IMAP4.abort | EOFError):
        return MailboxConnectionError(f"{doing}{at}: connection dropped: {exc}")
    if isinstance(exc, imaplib.IMAP4.error):
        return MailboxError(f"{doing}{at}: server refused: {exc}")
    if isinstance(exc, UnicodeError):
        # its text quotes the offending character, which may be part of a secret
        return MailboxError(f"{doing}{at}: {type(exc).__name__} (a value is not ASCII)")
    return MailboxError(f"{doing}{at}: {type(exc).__name__}: {exc}")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapConnector:
    """Makes logged-in IMAP connections as configured; every connection comes from here.

    Args:
        settings: the ``[imap]`` section.
        resolve: turns a configured path (``ca_file``, ``password_file``,
            ``oauth2_token_file``) into a file path; ``Settings.resolve`` makes
            relative paths relative to the config file.
        access_token: for ``auth = "xoauth2"`` without a token file or command: returns
            a fresh access token (:func:`triage.oauth2.token_getter`); may raise
            SignInRequiredError or OAuth2Error.
    """

    def __init__(
        self,
        settings: ImapSettings,
        *,
        resolve: Callable[[str], Path] = Path,
        access_token: Callable[[], str] | None = None,
    ) -> None:
        self.settings = settings
        self._resolve = resolve
        self._oauth2 = access_token

    @property
    def where(self) -> str:
        """``host:port`` for messages."""
        return f"{self.settings.host}:{self.settings.port}"

    def tls_context(self) -> ssl.SSLContext:
        """The client TLS context: verifying with host-name checks unless tls_verify is false.

        The system CAs are always loaded; ``ca_file`` (PEM) is added to them.

        Raises:
            ConfigError: ``ca_file`` cannot be read or holds no certificate.
        """
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if self.settings.ca_file:
            path = self._resolve(self.settings.ca_file)
            try:
                context.load_verify_locations(cafile=str(path))
            except FileNotFoundError:
                raise ConfigError(f"imap.ca_file: {path} does not exist") from None
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"imap.ca_file: cannot load {path}: {exc}") from None
        if not self.settings.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    def connect(self) -> IMAPClient:
        """Open a connection, secure it as configured and log in.

        Returns:
            A logged-in client with times returned timezone-aware
            (``normalise_times = False``) and every socket operation bounded by
            ``settings.timeout`` seconds.

        Raises:
            MailboxAuthError: the credentials were refused (or XOAUTH2 is not offered).
            MailboxError: the server is unreachable, TLS failed or is not offered for
                STARTTLS, or the connection dropped during login.
            ConfigError: the password, token or CA file cannot be read.
        """
        s = self.settings
        if s.security != "none" and not s.tls_verify:
            log.warning("imap_tls_unverified", host=s.host, port=s.port)
        if s.security == "none" and not _is_loopback(s.host):
            log.warning("imap_plaintext", host=s.host, port=s.port)
        context = self.tls_context() if s.security != "none" else None
        timeout = SocketTimeout(connect=s.timeout, read=s.timeout)
        try:
            client = IMAPClient(
                s.host,
                port=s.port,
                ssl=s.security == "tls",
                ssl_context=context if s.security == "tls" else None,
                timeout=timeout,
            )
        except Exception as exc:  # noqa: BLE001 - every failure becomes a MailboxError
            raise as_mailbox_error(exc, "connecting to the IMAP server", where=self.where) from None
        enable_tcp_keepalive(client.socket(), s.keepalive)
        try:
            if s.security == "starttls":
                self._starttls(client, context)
            self._login(client)
        except BaseException:
            _shutdown(client)
            raise
        client.normalise_times = False
        return client

    def _starttls(self, client: IMAPClient, context: ssl.SSLContext | None) -> None:
        try:
            offered = client.has_capability("STARTTLS")
        except Exception as exc:  # noqa: BLE001 - every failure becomes a MailboxError
            raise as_mailbox_error(exc, "reading capabilities", where=self.where) from None
        if not offered:
            raise MailboxError(
                f"{self.where} does not offer STARTTLS; refusing to log in without TLS"
                " (use security = 'tls', or 'none' deliberately)"
            )
        try:
            client.starttls(context)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a MailboxError
            raise as_mailbox_error(exc, "STARTTLS", where=self.where) from None

    def _login(self, client: IMAPClient) -> None:
        s = self.settings
        secret = self._access_token() if s.auth == "xoauth2" else self._password()
        refused = ""
        try:
            xoauth2 = s.auth == "xoauth2"
            if xoauth2 and not client.has_capability("AUTH=XOAUTH2"):
                refused = f"{self.where} does not offer AUTH=XOAUTH2"
            elif xoauth2:
                client.oauth2_login(s.username, secret)
            elif (s.username + secret).isascii():
                client.login(s.username, secret)
            elif client.has_capability("AUTH=PLAIN"):
                # LOGIN's quoted strings are ASCII-only in practice (imaplib encodes
                # them as ASCII); AUTHENTICATE PLAIN carries UTF-8 (RFC 4616).
                client.plain_login(s.username, secret)
            else:
                refused = (
                    "the imap username or password has non-ASCII characters, which LOGIN"
                    f" cannot carry, and {self.where} does not offer AUTH=PLAIN"
                )
        except LoginError as exc:
            raise MailboxAuthError(
                f"login as {s.username} refused by {self.where}: {_server_text(exc)}"
            ) from None
        except Exception as exc:  # noqa: BLE001 - every failure becomes a MailboxError
            raise as_mailbox_error(exc, f"logging in as {s.username}", where=self.where) from None
        if refused:
            raise MailboxAuthError(refused)
        log.debug("imap_logged_in", host=s.host, username=s.username, auth=s.auth)

    def _password(self) -> str:
        s = self.settings
        return read_secret(
            s.key,
            env=s.password_env,
            file=self._resolve(s.password_file) if s.password_file else "",
        )

    def _access_token(self) -> str:
        s = self.settings
        if self._oauth2 is not None and not (s.oauth2_token_command or s.oauth2_token_file):
            try:
                return self._oauth2()
            except SignInRequiredError as exc:
                raise MailboxAuthError(f"XOAUTH2 for {s.username}: {exc}") from None
            except OAuth2Error as exc:
                raise MailboxError(f"XOAUTH2 for {s.username}: {exc}") from None
        if not (s.oauth2_token_command or s.oauth2_token_file):
            raise ConfigError(
                f"{s.key}.auth: 'xoauth2' needs an [oauth2] section, oauth2_token_file or"
                " oauth2_token_command"
            )
        if s.oauth2_token_command:
            return run_token_command(
                f"{s.key}.oauth2_token_command", s.oauth2_token_command, timeout=s.timeout
            )
        return read_secret(
            s.key, file=self._resolve(s.oauth2_token_file), file_key="oauth2_token_file"
        )


def _server_text(exc: BaseException) -> str:
    text = str(exc).strip()
    if text.startswith(("b'", 'b"')):
        text = text[2:-1]
    return text or type(exc).__name__


def _shutdown(client: IMAPClient) -> None:
    """Close the socket without a LOGOUT round trip (the connection is being abandoned)."""
    with contextlib.suppress(OSError, imaplib.IMAP4.error, EOFError, AttributeError):
        client.shutdown()


KEEPALIVE_PROBES = 3
"""Unanswered TCP keepalive probes before the kernel declares the peer gone."""


def enable_tcp_keepalive(sock: socket.socket, idle: float) -> None:
    """Turn on TCP keepalive: first probe after ``idle`` seconds of silence (Linux names).

    Probes follow every ``idle / 3`` seconds; after :data:`KEEPALIVE_PROBES`
    unanswered ones a read on the socket fails, so a peer that vanished without
    FIN or RST (a NAT or firewall dropping the flow: ../shared/cases/B28) is
    found within about ``2 * idle`` seconds even while a read is blocked. Where
    the platform lacks an option it is left at the system default.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        seconds = max(1, round(idle))
        for name, value in (
            ("TCP_KEEPIDLE", seconds),
            ("TCP_KEEPINTVL", max(1, seconds // KEEPALIVE_PROBES)),
            ("TCP_KEEPCNT", KEEPALIVE_PROBES),
        ):
            option = getattr(socket, name, None)
            if option is not None:
                sock.setsockopt(socket.IPPROTO_TCP, option, value)


def shutdown_socket(client: IMAPClient) -> None:
    """Make any blocking read on ``client`` return at once (used from another thread)."""
    with contextlib.suppress(OSError, AttributeError):
        client.socket().shutdown(socket.SHUT_RDWR)
