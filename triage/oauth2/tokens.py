"""What every OAuth2 provider shares: one lock, reloading the cache, one clear error.

A :class:`TokenSource` hands out access tokens for XOAUTH2. Subclasses
(:mod:`triage.oauth2.microsoft`, :mod:`triage.oauth2.google`) talk to their
library (msal, google-auth); this base class:

- serializes calls (the IMAP watcher threads and the dispatcher share one source,
  and a refresh token may rotate on use);
- logs ``oauth2_token_obtained`` when a token came from the token endpoint (not
  from the cache), and a failure once per episode: ``oauth2_sign_in_required``
  (expired or revoked refresh token: ``triage auth login`` again) or
  ``oauth2_token_failed`` (endpoint unreachable or erroring), then
  ``oauth2_recovered`` when tokens flow again. Callers (the IMAP connector, the
  SMTP sender) turn the error into a refused login, which the daemon retries at
  back-off pace and ``triage status`` shows as the folder's or outbox's last error.

Secrets (tokens, client secrets) never reach a log line or an exception message.
"""

from __future__ import annotations

import socket
import ssl
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from triage.config import OAuth2Settings
from triage.errors import OAuth2Error, SignInRequiredError
from triage.logs import get_logger

__all__ = ["Obtained", "SignIn", "TokenSource", "network_reason"]

SIGN_IN_ERRORS = frozenset(
    {
        "invalid_grant",  # RFC 6749 section 5.2: expired, revoked, or for another client
        "interaction_required",  # Entra ID: MFA, consent or password change needed
        "consent_required",
        "login_required",
        "invalid_client",  # the client secret or app is refused: fix config, not retry
        "unauthorized_client",
    }
)
"""Token endpoint errors that retrying with the same grant will not fix."""


def network_reason(exc: BaseException, host: str) -> str:
    """Why a request to ``host`` failed, in an admin's words, from the exception chain
    of requests / urllib3 / the socket (the exception's class name only as a last resort).

    ``"name resolution failed for HOST"``, ``"connection refused by HOST"``, ``"HOST did
    not answer in time"``, ``"TLS with HOST failed: ..."`` or ``"connection to HOST
    failed: ..."``. Never includes a request body (no secret is in these exceptions).
    """
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        name = type(current).__name__
        if isinstance(current, socket.gaierror) or name == "NameResolutionError":
            return f"name resolution failed for {host}"
        if isinstance(current, ConnectionRefusedError):
            return f"connection refused by {host}"
        if isinstance(current, TimeoutError) or "Timeout" in name:
            return f"{host} did not answer in time"
        if isinstance(current, ssl.SSLError):
            return f"TLS with {host} failed: {current.reason or current}"
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        todo.extend(
            e
            for e in (getattr(current, "reason", None), current.__cause__, current.__context__)
            if isinstance(e, BaseException)
        )
    text = (str(exc).strip().splitlines() or [""])[0]
    return f"connection to {host} failed: {text or type(exc).__name__}"


def log_() -> Any:
    """The module's logger (bound at each call so it follows the logging configuration)."""
    return get_logger("triage.oauth2")


@dataclass(frozen=True, slots=True)
class Obtained:
    """An access token and whether the token endpoint was asked for it (else a cache)."""

    token: str
    fresh: bool


@dataclass(frozen=True, slots=True)
class SignIn:
    """Who is signed in (or which app), as shown by ``triage auth status``.

    Attributes:
        account: the account or app (``inbox@example.com``, ``app 1234...``).
        detail: more about it (tenant, token cache path, expiry).
    """

    account: str
    detail: str = ""


class TokenSource(ABC):
    """Access tokens for one ``[oauth2]`` configuration.

    Args:
        settings: the ``[oauth2]`` section.
        resolve: makes a configured path absolute (``Settings.resolve``).
    """

    def __init__(self, settings: OAuth2Settings, resolve: Callable[[str], Path]) -> None:
        self.settings = settings
        self.resolve = resolve
        self.cache_path = resolve(settings.token_cache)
        self._lock = threading.Lock()
        self._failing = ""

    @property
    def name(self) -> str:
        """``microsoft device_code`` etc., for messages."""
        return f"{self.settings.provider} {self.settings.effective_flow}"

    def access_token(self, user: str) -> str:
        """A valid access token for ``user`` (the mailbox address), refreshed if needed.

        Raises:
            SignInRequiredError: no sign-in, or it expired or was revoked; or the
                app's credentials were refused.
            OAuth2Error: the token endpoint is unreachable or failed (retry later).
        """
        log = log_()
        with self._lock:
            try:
                obtained = self._obtain(user)
            except SignInRequiredError as exc:
                self._failed("oauth2_sign_in_required", exc)
                raise
            except OAuth2Error as exc:
                self._failed("oauth2_token_failed", exc)
                raise
            if self._failing:
                log.info("oauth2_recovered", provider=self.name)
                self._failing = ""
        if obtained.fresh:
            log.info("oauth2_token_obtained", provider=self.name, user=user)
        return obtained.token

    def _failed(self, event: str, exc: OAuth2Error) -> None:
        message = str(exc)
        if message != self._failing:  # one clear line per episode, not one per retry
            log_().error(event, provider=self.name, error=message)
        self._failing = message

    @abstractmethod
    def _obtain(self, user: str) -> Obtained:
        """Get a token (from the library's cache or the endpoint); raise OAuth2Error kinds."""

    @abstractmethod
    def sign_in(self, user: str, *, say: Callable[[str], None], port: int, browser: bool) -> SignIn:
        """The interactive sign-in (device code or loopback browser); stores the result.

        Args:
            user: the mailbox the token is for (a login hint).
            say: prints instructions for the person at the terminal.
            port: the loopback port of the browser flow (0: any free port).
            browser: open a browser on this machine (browser flow only).

        Raises:
            SignInRequiredError: the sign-in was refused, cancelled or timed out.
            OAuth2Error: the provider could not be reached.
        """

    @abstractmethod
    def signed_in(self) -> SignIn | None:
        """Who the token cache says is signed in (no network); None when nobody."""

    def sign_out(self) -> bool:
        """Delete the token cache; True when there was one."""
        with self._lock:
            existed = self.cache_path.exists()
            self.cache_path.unlink(missing_ok=True)
            return existed
