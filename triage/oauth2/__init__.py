"""OAuth2 sign-in for XOAUTH2 (IMAP and SMTP) with Microsoft 365 and Gmail.

``triage auth login`` signs in once (:meth:`TokenSource.sign_in`); the daemon
then asks :func:`token_source` for access tokens, which the libraries refresh
silently. Providers: :class:`~triage.oauth2.microsoft.MicrosoftTokens` (msal:
device code, client credentials) and :class:`~triage.oauth2.google.GoogleTokens`
(google-auth-oauthlib: installed-app loopback flow with PKCE; service accounts).
Errors: :class:`~triage.errors.SignInRequiredError` (sign in again) and
:class:`~triage.errors.OAuth2Error` (try again later).
"""

from __future__ import annotations

from collections.abc import Callable

from triage.config import Settings
from triage.oauth2.tokens import SignIn, TokenSource

__all__ = ["SignIn", "TokenSource", "token_getter", "token_source"]

_SOURCES: dict[tuple[str, str], TokenSource] = {}


def token_source(settings: Settings) -> TokenSource | None:
    """The token source of ``settings.oauth2``, None without one.

    One per distinct ``[oauth2]`` section (and config directory, against which its
    paths resolve): IMAP and SMTP of one daemon share it, so a rotating refresh
    token is redeemed once and the cache file has one writer in the process.
    """
    if settings.oauth2 is None:
        return None
    key = (str(settings.base_dir), settings.oauth2.model_dump_json())
    source = _SOURCES.get(key)
    if source is None:
        if settings.oauth2.provider == "microsoft":
            from triage.oauth2.microsoft import MicrosoftTokens  # noqa: PLC0415 - msal on demand

            source = MicrosoftTokens(settings.oauth2, settings.resolve)
        else:
            from triage.oauth2.google import GoogleTokens  # noqa: PLC0415 - google-auth on demand

            source = GoogleTokens(settings.oauth2, settings.resolve)
        _SOURCES[key] = source
    return source


def token_getter(settings: Settings, user: str) -> Callable[[], str] | None:
    """A no-argument callable returning a fresh access token for ``user``, or None
    when there is no ``[oauth2]`` section."""
    source = token_source(settings)
    if source is None:
        return None

    def get() -> str:
        return source.access_token(user)

    return get
