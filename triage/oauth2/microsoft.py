"""Microsoft 365 (Entra ID) tokens with msal: the device-code flow, or app-only client credentials.

Device code (``flow = "device_code"``, a public client): ``triage auth login``
calls ``initiate_device_flow`` and prints Microsoft's instruction ("open
https://microsoft.com/devicelogin and enter the code ..."); a person signs in as
the mailbox (or as a user with access to a shared mailbox) on any device, and
``acquire_token_by_device_flow`` completes. msal's serializable token cache is
written to ``token_cache`` (mode 0600); the daemon then calls
``acquire_token_silent_with_error``, which uses the cached access token or
redeems the refresh token. The scopes are Exchange Online's IMAP and SMTP ones;
msal adds ``offline_access`` (and ``openid``, ``profile``) itself, which is what
gets the refresh token.

Client credentials (``flow = "client_credentials"``, app-only): the app's secret
from ``client_secret_env`` / ``client_secret_file``, the ``.default`` scope of
Exchange Online; the tenant admin grants the app IMAP.AccessAsApp /
SMTP.SendAsApp and mailbox access (README). No person signs in; nothing is
written to disk.

A cache file changed by ``triage auth login`` while the daemon runs is picked up
at the daemon's next attempt.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import msal
import requests

from triage.config import OAuth2Settings
from triage.errors import OAuth2Error, OAuth2UnreachableError, SignInRequiredError
from triage.oauth2.cache import UnusableCacheError, read_json_cache, unusable, write_private
from triage.oauth2.tokens import SIGN_IN_ERRORS, Obtained, SignIn, TokenSource, network_reason
from triage.secrets import read_secret

__all__ = ["APP_SCOPES", "DELEGATED_SCOPES", "MicrosoftTokens"]

DELEGATED_SCOPES = (
    "https://outlook.office.com/IMAP.AccessAsUser.All",
    "https://outlook.office.com/SMTP.Send",
)
"""Delegated scopes for IMAP and SMTP AUTH (one resource, so one token serves both)."""

APP_SCOPES = ("https://outlook.office365.com/.default",)
"""App-only: whatever the admin granted the app on Exchange Online."""

DEFAULT_AUTHORITY = "https://login.microsoftonline.com"


def _first_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[0]


class MicrosoftTokens(TokenSource):
    """Tokens from Entra ID for Exchange Online (see the module docstring)."""

    def __init__(self, settings: OAuth2Settings, resolve: Callable[[str], Path]) -> None:
        super().__init__(settings, resolve)
        self.authority = settings.authority or f"{DEFAULT_AUTHORITY}/{settings.tenant}"
        self.app_only = settings.effective_flow == "client_credentials"
        default = APP_SCOPES if self.app_only else DELEGATED_SCOPES
        self.scopes = list(settings.scopes or default)
        self._cache = msal.SerializableTokenCache()
        self._cache_stamp: tuple[int, int] | None = None
        self._app: msal.ClientApplication | None = None

    # -- the msal application and its cache ---------------------------------------------

    @property
    def _host(self) -> str:
        return urlsplit(self.authority).hostname or self.authority

    def _read_cache(self) -> tuple[str, msal.SerializableTokenCache] | None:
        """The cache file checked and loaded, None when there is none.

        Raises:
            UnusableCacheError: empty, not JSON, or not msal's shape.
            ConfigError: as :func:`~triage.oauth2.cache.read_private`.
        """
        data = read_json_cache(self.cache_path)
        if data is None:
            return None
        for section in data.values():  # msal: {"RefreshToken": {key: {...}}, ...}
            if not isinstance(section, dict) or not all(
                isinstance(e, dict) for e in section.values()
            ):
                raise unusable(self.cache_path, "not an msal token cache")
        cache = msal.SerializableTokenCache()
        text = json.dumps(data)
        try:
            cache.deserialize(text)
        except (ValueError, TypeError, AttributeError, KeyError):
            raise unusable(self.cache_path, "not an msal token cache") from None
        return text, cache

    def _application(self) -> msal.ClientApplication:
        if self._app is not None:
            return self._app
        common: dict[str, Any] = {
            "authority": self.authority,
            "token_cache": self._cache,
            "timeout": self.settings.timeout,
        }
        if self.settings.authority:
            # an authority the operator named (national cloud; tests): no lookup of it
            # at login.microsoftonline.com
            common["instance_discovery"] = False
        try:
            if self.app_only:
                secret = read_secret(
                    "oauth2",
                    env=self.settings.client_secret_env,
                    file=self.resolve(self.settings.client_secret_file)
                    if self.settings.client_secret_file
                    else "",
                    env_key="client_secret_env",
                    file_key="client_secret_file",
                )
                self._app = msal.ConfidentialClientApplication(
                    self.settings.client_id, client_credential=secret, **common
                )
            else:
                self._app = msal.PublicClientApplication(self.settings.client_id, **common)
        except requests.RequestException as exc:
            raise OAuth2UnreachableError(
                f"cannot reach the Microsoft sign-in service ({self.authority}):"
                f" {network_reason(exc, self._host)}"
            ) from None
        except ValueError as exc:  # msal: the authority's discovery document is missing
            raise OAuth2Error(
                f"oauth2.authority {self.authority}: {_first_line(str(exc))}"
            ) from None
        return self._app

    def _load_cache(self) -> None:
        """(Re)read the cache file when it changed (another process signed in)."""
        if self.app_only:
            return
        try:
            info = self.cache_path.stat()
        except FileNotFoundError:
            # signed out (`triage auth logout`, or the file deleted): forget what is in
            # memory too, so the refresh token is not redeemed and written back
            if self._cache_stamp is not None:
                self._cache = msal.SerializableTokenCache()
                self._app = None  # the application holds the cache it was made with
            self._cache_stamp = None
            return
        stamp = (info.st_mtime_ns, info.st_size)
        if stamp == self._cache_stamp:
            return
        loaded = self._read_cache()
        if loaded is not None:
            self._cache.deserialize(loaded[0])
        self._cache_stamp = stamp

    def _save_cache(self) -> None:
        if self.app_only or not self._cache.has_state_changed:
            return
        write_private(self.cache_path, self._cache.serialize())
        self._cache.has_state_changed = False
        info = self.cache_path.stat()
        self._cache_stamp = (info.st_mtime_ns, info.st_size)

    # -- tokens -------------------------------------------------------------------------

    def _result(self, result: dict[str, Any] | None, who: str) -> Obtained:
        if result is None:
            raise SignInRequiredError(
                f"no Microsoft 365 sign-in for {who} in {self.cache_path}: run `triage auth login`"
            )
        token = result.get("access_token")
        if isinstance(token, str) and token:
            return Obtained(token, result.get("token_source") != "cache")
        error = str(result.get("error", "error"))
        description = _first_line(str(result.get("error_description", "")))
        if error in SIGN_IN_ERRORS:
            what = (
                "the app's credentials were refused"
                if self.app_only
                else f"the Microsoft 365 sign-in of {who} has expired or was revoked"
            )
            raise SignInRequiredError(
                f"{what} ({error}: {description}); "
                + (
                    "fix oauth2.client_secret_*"
                    if self.app_only
                    else "run `triage auth login` again"
                )
            )
        raise OAuth2Error(f"the Microsoft token endpoint refused: {error}: {description}")

    def _obtain(self, user: str) -> Obtained:
        self._load_cache()  # an unusable cache says so before any network
        try:
            app = self._application()
            if self.app_only:
                assert isinstance(app, msal.ConfidentialClientApplication)  # noqa: S101
                return self._result(app.acquire_token_for_client(scopes=self.scopes), "the app")
            accounts = app.get_accounts()
            if not accounts:
                return self._result(None, user)
            account = next(
                (a for a in accounts if str(a.get("username", "")).lower() == user.lower()),
                accounts[0],
            )
            result = app.acquire_token_silent_with_error(self.scopes, account=account)
        except requests.RequestException as exc:
            raise OAuth2UnreachableError(
                f"cannot reach the Microsoft token endpoint: {network_reason(exc, self._host)}"
            ) from None
        obtained = self._result(result, str(account.get("username", user)))
        self._save_cache()
        return obtained

    # -- signing in ---------------------------------------------------------------------

    def sign_in(self, user: str, *, say: Callable[[str], None], port: int, browser: bool) -> SignIn:  # noqa: ARG002 - the device flow needs neither
        """Device code: print Microsoft's instruction and wait; client credentials: one token."""
        if self.app_only:
            self.access_token(user)
            return SignIn(f"app {self.settings.client_id}", f"tenant {self.settings.tenant}")
        try:
            self._load_cache()
        except UnusableCacheError as exc:  # signing in is how it is fixed
            say(f"The token cache {exc.path} is not a valid sign-in ({exc.reason}): replacing it.")
            self._cache = msal.SerializableTokenCache()
            self._app = None  # the application holds the cache it was made with
        try:
            app = self._application()
            assert isinstance(app, msal.PublicClientApplication)  # noqa: S101
            flow = app.initiate_device_flow(scopes=self.scopes)
            if "user_code" not in flow:
                raise SignInRequiredError(
                    "Microsoft refused to start the device sign-in:"
                    f" {flow.get('error')}: {_first_line(str(flow.get('error_description', '')))}"
                )
            say(str(flow["message"]))
            say(f"Sign in as {user} (or a user with access to that mailbox).")
            result = app.acquire_token_by_device_flow(flow)
        except requests.RequestException as exc:
            raise OAuth2UnreachableError(
                f"cannot reach the Microsoft sign-in service: {network_reason(exc, self._host)}"
            ) from None
        if "access_token" not in result:
            raise SignInRequiredError(
                f"the sign-in did not complete: {result.get('error')}:"
                f" {_first_line(str(result.get('error_description', '')))}"
            )
        self._save_cache()
        claims = result.get("id_token_claims") or {}
        account = str(claims.get("preferred_username") or claims.get("upn") or user)
        return SignIn(account, f"token cache {self.cache_path}")

    def signed_in(self) -> SignIn | None:
        """The account in the token cache (client credentials: the app)."""
        if self.app_only:
            return SignIn(f"app {self.settings.client_id}", f"tenant {self.settings.tenant}")
        loaded = self._read_cache()
        if loaded is None:
            return None
        cache = loaded[1]
        # search(), not find(): msal deprecates find() (a DeprecationWarning each call)
        accounts = list(cache.search(msal.TokenCache.CredentialType.ACCOUNT))
        refresh = list(cache.search(msal.TokenCache.CredentialType.REFRESH_TOKEN))
        if not accounts or not refresh:
            return None
        names = ", ".join(sorted(str(a.get("username", "?")) for a in accounts))
        return SignIn(names, f"token cache {self.cache_path}")
