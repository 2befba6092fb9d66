"""Gmail / Google Workspace tokens with google-auth: the installed-app loopback flow, or a
service account with domain-wide delegation.

Installed app (``flow = "installed"``): Google's device flow refuses the
``https://mail.google.com/`` scope IMAP and SMTP need, so ``triage auth login``
runs google-auth-oauthlib's ``InstalledAppFlow.run_local_server``: a one-shot
HTTP listener on ``localhost:<port>``, an authorization URL with a PKCE (S256)
challenge, ``access_type=offline`` and ``prompt=consent`` (so a refresh token is
issued). A person opens the URL in a browser on this machine, or on their own
machine through ``ssh -L <port>:localhost:<port> server``; Google redirects
the browser to the listener, and the code is redeemed with the PKCE verifier.
The credentials (refresh token, client id and secret, token URI) are written
to ``token_cache`` (mode 0600); the daemon refreshes them with
``Credentials.refresh``. ``client_secrets_file`` is the OAuth client JSON of a
"Desktop app" client from the Google Cloud console.

Service account (``flow = "service_account"``): the key JSON in
``service_account_file``; the token is for the mailbox (``subject``), which the
Workspace admin allows through domain-wide delegation of
``https://mail.google.com/``. Nothing is written to disk.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import google.auth.exceptions
import requests
from google.auth.transport.requests import Request
from google.oauth2 import credentials as user_credentials
from google.oauth2 import service_account
from google_auth_oauthlib.flow import InstalledAppFlow

from triage.config import OAuth2Settings
from triage.errors import ConfigError, OAuth2Error, OAuth2UnreachableError, SignInRequiredError
from triage.oauth2.cache import read_json_cache, unusable, write_private
from triage.oauth2.tokens import SIGN_IN_ERRORS, Obtained, SignIn, TokenSource, network_reason

__all__ = ["SCOPES", "GoogleTokens"]

SCOPES = ("https://mail.google.com/",)
"""The one Gmail scope that covers IMAP and SMTP (XOAUTH2)."""

SIGN_IN_TIMEOUT = 600
"""Seconds ``triage auth login`` waits for the browser to come back."""


class _TimedRequest(Request):
    """google-auth's requests transport with our timeout instead of its 120 s."""

    def __init__(self, timeout: float) -> None:
        super().__init__(requests.Session())
        self._timeout = timeout

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        kwargs["timeout"] = self._timeout
        return super().__call__(*args, **kwargs)


def _reason(exc: BaseException) -> str:
    """The first line of a library's error (a file's problem, never its content)."""
    text = (str(exc).strip().splitlines() or [""])[0][:200]
    return text or type(exc).__name__


def _refresh_error(exc: Exception, who: str, host: str) -> OAuth2Error:
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    code = text.split(":", 1)[0].strip()
    first = (text.strip().splitlines() or [""])[0]
    if isinstance(exc, google.auth.exceptions.TransportError):
        return OAuth2UnreachableError(
            f"cannot reach Google's token endpoint: {network_reason(exc, host)}"
        )
    if code in SIGN_IN_ERRORS:
        return SignInRequiredError(
            f"the Google sign-in of {who} has expired or was revoked ({first});"
            " run `triage auth login` again"
        )
    return OAuth2Error(f"Google's token endpoint refused: {first}")


class GoogleTokens(TokenSource):
    """Tokens from Google for Gmail (see the module docstring)."""

    def __init__(self, settings: OAuth2Settings, resolve: Callable[[str], Path]) -> None:
        super().__init__(settings, resolve)
        self.scopes = list(settings.scopes or SCOPES)
        self.service = settings.effective_flow == "service_account"
        self._user: user_credentials.Credentials | None = None
        self._stamp: tuple[int, int] | None = None
        self._delegated: dict[str, service_account.Credentials] = {}

    # -- installed app: the cached credentials --------------------------------------------

    def _load_user(self) -> user_credentials.Credentials | None:
        try:
            info = self.cache_path.stat()
        except FileNotFoundError:
            self._user, self._stamp = None, None
            return None
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp != self._stamp or self._user is None:
            data = self._read_cache()
            if data is None:
                self._user, self._stamp = None, None
                return None
            try:
                creds = user_credentials.Credentials.from_authorized_user_info(data, self.scopes)
            except (ValueError, TypeError, KeyError, AttributeError) as exc:
                raise unusable(self.cache_path, f"not a Google sign-in: {_reason(exc)}") from None
            # google-auth always sets Google's token URI here; the client JSON the
            # config names says which one to use (the same unless it was changed)
            self._user = creds.with_token_uri(self._client_token_uri())
            self._stamp = stamp
        return self._user

    def _read_cache(self) -> dict[str, Any] | None:
        """The cache file as a JSON object with a refresh token; None when missing.

        Raises:
            UnusableCacheError: empty, not JSON, not an object, no refresh token.
            ConfigError: as :func:`~triage.oauth2.cache.read_private`.
        """
        data = read_json_cache(self.cache_path)
        if data is not None and not (
            isinstance(data.get("refresh_token"), str) and data["refresh_token"]
        ):
            raise unusable(self.cache_path, "no refresh token in it")
        return data

    def _client_token_uri(self) -> str:
        """``token_uri`` of the OAuth client JSON (``client_secrets_file``)."""
        path = self.resolve(self.settings.client_secrets_file)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            section = data.get("installed") or data.get("web") or {}
            return str(section["token_uri"])
        except OSError as exc:
            raise ConfigError(
                f"oauth2.client_secrets_file: cannot read {path}: {exc.strerror}"
            ) from None
        except (ValueError, KeyError, AttributeError, TypeError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else _reason(exc)
            raise ConfigError(
                f"oauth2.client_secrets_file: no token_uri in {path} ({what}): download the"
                " OAuth client JSON (Desktop app) from the Google Cloud console"
            ) from None

    def _save_user(self, creds: user_credentials.Credentials) -> None:
        write_private(self.cache_path, creds.to_json())
        info = self.cache_path.stat()
        self._user, self._stamp = creds, (info.st_mtime_ns, info.st_size)

    def _delegated_for(self, user: str) -> service_account.Credentials:
        creds = self._delegated.get(user)
        if creds is None:
            path = self.resolve(self.settings.service_account_file)
            try:
                creds = service_account.Credentials.from_service_account_file(
                    str(path), scopes=self.scopes, subject=user
                )
            except OSError as exc:
                raise ConfigError(
                    f"oauth2.service_account_file: cannot read {path}: {exc.strerror}"
                ) from None
            except (ValueError, KeyError, TypeError) as exc:
                what = f"no {exc}" if isinstance(exc, KeyError) else _reason(exc)
                raise ConfigError(
                    f"oauth2.service_account_file: cannot use {path} ({what}): download a new"
                    " key (JSON) of the service account from the Google Cloud console"
                ) from None
            self._delegated[user] = creds
        return creds

    def _obtain(self, user: str) -> Obtained:
        if self.service:
            creds: Any = self._delegated_for(user)
        else:
            creds = self._load_user()
            if creds is None or not creds.refresh_token:
                raise SignInRequiredError(
                    f"no Google sign-in for {user} in {self.cache_path}: run `triage auth login`"
                )
        if creds.valid:
            return Obtained(str(creds.token), fresh=False)
        try:
            creds.refresh(_TimedRequest(self.settings.timeout))
        except (google.auth.exceptions.RefreshError, google.auth.exceptions.TransportError) as exc:
            raise _refresh_error(exc, user, self._host_of(creds)) from None
        except requests.RequestException as exc:
            raise OAuth2UnreachableError(
                f"cannot reach Google's token endpoint: {network_reason(exc, self._host_of(creds))}"
            ) from None
        if not self.service:
            self._save_user(creds)
        return Obtained(str(creds.token), fresh=True)

    @staticmethod
    def _host_of(creds: Any) -> str:
        uri = getattr(creds, "token_uri", None) or getattr(creds, "_token_uri", None) or ""
        return urlsplit(str(uri)).hostname or "oauth2.googleapis.com"

    # -- signing in ---------------------------------------------------------------------

    def sign_in(self, user: str, *, say: Callable[[str], None], port: int, browser: bool) -> SignIn:
        """Installed app: the loopback browser flow with PKCE; service account: one token."""
        if self.service:
            self.access_token(user)
            return SignIn(user, f"service account {self.settings.service_account_file}")
        path = self.resolve(self.settings.client_secrets_file)
        try:
            flow = InstalledAppFlow.from_client_secrets_file(
                str(path), scopes=self.scopes, autogenerate_code_verifier=True
            )
        except OSError as exc:
            raise ConfigError(
                f"oauth2.client_secrets_file: cannot read {path}: {exc.strerror}"
            ) from None
        except (ValueError, KeyError, TypeError) as exc:
            what = f"no {exc}" if isinstance(exc, KeyError) else _reason(exc)
            raise ConfigError(
                f"oauth2.client_secrets_file: cannot use {path} ({what}):"
                " download the OAuth client JSON (Desktop app) from the Google Cloud console"
            ) from None
        say("Starting the Google sign-in (installed-app loopback flow with PKCE).")
        listen = port
        prompt = (
            "Open this address in a browser on this machine"
            + (
                f" (or on yours, after: ssh -L {listen}:localhost:{listen} <this server>)"
                if listen
                else ""
            )
            + ":\n{url}\n"
            + f"Sign in as {user} and allow access (waiting {SIGN_IN_TIMEOUT // 60} minutes)."
        )
        try:
            creds = flow.run_local_server(
                host="localhost",
                port=port,
                open_browser=browser,
                authorization_prompt_message=prompt,
                success_message="triage is signed in. You may close this window.",
                timeout_seconds=SIGN_IN_TIMEOUT,
                access_type="offline",
                prompt="consent",
                login_hint=user,
            )
        except OSError as exc:
            raise OAuth2Error(f"cannot listen on localhost:{port}: {exc.strerror or exc}") from None
        except Exception as exc:  # noqa: BLE001 - oauthlib raises many kinds; one line each
            raise SignInRequiredError(
                f"the Google sign-in did not complete: {type(exc).__name__}: {exc}"
            ) from None
        if not creds.refresh_token:
            raise SignInRequiredError(
                "Google issued no refresh token; remove triage's access at"
                " https://myaccount.google.com/permissions and sign in again"
            )
        say_done = f"token cache {self.cache_path}"
        self._save_user(creds)
        return SignIn(user, say_done)

    def signed_in(self) -> SignIn | None:
        """The sign-in in the token cache (service account: the key file)."""
        if self.service:
            return SignIn("service account", str(self.resolve(self.settings.service_account_file)))
        data = self._read_cache()
        if data is None:
            return None
        return SignIn(
            str(data.get("account") or "Google account"), f"token cache {self.cache_path}"
        )
