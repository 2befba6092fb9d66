"""Reading secrets named by the config: an environment variable or a file.

A secret's value never appears in a message, log or exception; errors name the
config key and the variable or file instead.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from triage.errors import ConfigError

if TYPE_CHECKING:
    from triage.config import Settings

__all__ = ["check_secrets", "check_sign_in", "read_secret", "run_token_command"]


def read_secret(
    key: str,
    *,
    env: str = "",
    file: str | Path = "",
    env_key: str = "password_env",
    file_key: str = "password_file",
) -> str:
    """Return the secret named by ``env`` (an environment variable) or ``file``.

    Args:
        key: the config section for messages, e.g. ``"imap"``.
        env: name of the environment variable holding the secret.
        file: path of a file holding it (surrounding whitespace is stripped).
        env_key, file_key: the keys of the section that name them, for messages
            (``oauth2`` uses ``client_secret_env`` / ``client_secret_file``).

    Raises:
        ConfigError: neither is given, the variable is unset or empty, or the file
            cannot be read or is empty; naming ``key.env_key`` or ``key.file_key``.
            The message never includes the value.
    """
    if env:
        value = os.environ.get(env, "")
        if not value:
            raise ConfigError(f"{key}.{env_key}: environment variable {env} is not set or empty")
        return value
    if file:
        path = Path(file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}.{file_key}: cannot read {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{key}.{file_key}: {path} is not UTF-8 text") from None
        if not value:
            raise ConfigError(f"{key}.{file_key}: {path} is empty")
        return value
    raise ConfigError(f"{key}: no {env_key} or {file_key} is configured")


def run_token_command(key: str, command: str, *, timeout: float = 30.0) -> str:
    """Run ``command`` (split like a shell, not through one) and return its stdout, stripped.

    Used for OAuth2 access tokens. Raises ConfigError if the command fails or prints
    nothing; the output is never included in the message.
    """
    try:
        done = subprocess.run(  # noqa: S603 - the command comes from the operator's config
            shlex.split(command), capture_output=True, timeout=timeout, check=False, text=True
        )
    except subprocess.TimeoutExpired:
        raise ConfigError(f"{key}: token command did not finish within {timeout:g} s") from None
    except OSError as exc:
        raise ConfigError(
            f"{key}: token command cannot be run: {exc.strerror or type(exc).__name__}"
        ) from None
    except ValueError as exc:  # shlex: unbalanced quotes
        raise ConfigError(f"{key}: token command cannot be parsed: {exc}") from None
    if done.returncode != 0:
        raise ConfigError(f"{key}: token command exited with status {done.returncode}")
    token = done.stdout.strip()
    if not token:
        raise ConfigError(f"{key}: token command printed nothing")
    return token


def check_secrets(settings: Settings) -> None:
    """Read every secret the config names, so a missing one stops start-up at once.

    Every mailbox: ``[imap]`` and each ``[[imap.accounts]]`` entry (named
    ``imap.accounts.N`` in messages), then ``[smtp]``.

    Raises:
        ConfigError: naming the key and the variable or file (never the value).
    """
    imap, smtp = settings.imap, settings.smtp
    signed_in = False
    for _name, mailbox in imap.mailboxes() if imap is not None else []:
        key = mailbox.key  # imap, or imap.accounts.N for [[imap.accounts]]
        if mailbox.auth == "password":
            read_secret(
                key,
                env=mailbox.password_env,
                file=settings.resolve(mailbox.password_file) if mailbox.password_file else "",
            )
        elif mailbox.oauth2_token_file:
            read_secret(
                key,
                file=settings.resolve(mailbox.oauth2_token_file),
                file_key="oauth2_token_file",
            )
        elif mailbox.oauth2_token_command:
            run_token_command(f"{key}.oauth2_token_command", mailbox.oauth2_token_command)
        elif not signed_in:
            check_sign_in(settings)
            signed_in = True
    if smtp is not None and smtp.mode == "send" and smtp.auth == "xoauth2":
        check_sign_in(settings)
    elif smtp is not None and smtp.mode == "send" and smtp.username:
        read_secret(
            "smtp",
            env=smtp.password_env,
            file=settings.resolve(smtp.password_file) if smtp.password_file else "",
        )


def check_sign_in(settings: Settings) -> None:
    """The ``[oauth2]`` sign-in exists (no network): a token cache with a refresh token,
    the app's client secret, or the service account's key file.

    Raises:
        ConfigError: nothing to sign in with, naming the key and what to run.
    """
    from triage.oauth2 import token_source  # noqa: PLC0415 - msal / google-auth on demand

    oauth2 = settings.oauth2
    source = token_source(settings)
    if oauth2 is None or source is None:
        raise ConfigError("xoauth2 needs an [oauth2] section")
    flow = oauth2.effective_flow
    if flow == "client_credentials":
        read_secret(
            "oauth2",
            env=oauth2.client_secret_env,
            file=settings.resolve(oauth2.client_secret_file) if oauth2.client_secret_file else "",
            env_key="client_secret_env",
            file_key="client_secret_file",
        )
    elif flow == "service_account":
        path = settings.resolve(oauth2.service_account_file)
        if not path.is_file():
            raise ConfigError(f"oauth2.service_account_file: {path} does not exist")
    elif source.signed_in() is None:  # raises ConfigError for an unusable cache file
        raise ConfigError(
            f"oauth2.token_cache: no sign-in at {source.cache_path}: run `triage auth login` first"
        )
