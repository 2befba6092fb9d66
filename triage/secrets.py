"""Reading secrets named by the config: an environment variable or a file.

A secret's value never appears in a message, log or exception; errors name the
config key and the variable or file instead.
"""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

from triage.errors import ConfigError

__all__ = ["read_secret", "run_token_command"]


def read_secret(key: str, *, env: str = "", file: str | Path = "") -> str:
    """Return the secret named by ``env`` (an environment variable) or ``file``.

    Args:
        key: the config section for messages, e.g. ``"imap"``.
        env: name of the environment variable holding the secret.
        file: path of a file holding it (surrounding whitespace is stripped).

    Raises:
        ConfigError: neither is given, the variable is unset or empty, or the file
            cannot be read or is empty. The message never includes the value.
    """
    if env:
        value = os.environ.get(env, "")
        if not value:
            raise ConfigError(f"{key}.password_env: environment variable {env} is not set or empty")
        return value
    if file:
        path = Path(file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{key}.password_file: cannot read {path}: {exc.strerror}") from None
        if not value:
            raise ConfigError(f"{key}.password_file: {path} is empty")
        return value
    raise ConfigError(f"{key}: no password_env or password_file is configured")


def run_token_command(key: str, command: str, *, timeout: float = 30.0) -> str:
    """Run ``command`` (split like a shell, not through one) and return its stdout, stripped.

    Used for OAuth2 access tokens. Raises ConfigError if the command fails or prints
    nothing; the output is never included in the message.
    """
    try:
        done = subprocess.run(  # noqa: S603 - the command comes from the operator's config
            shlex.split(command), capture_output=True, timeout=timeout, check=False, text=True
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ConfigError(f"{key}: token command failed: {type(exc).__name__}") from None
    if done.returncode != 0:
        raise ConfigError(f"{key}: token command exited with status {done.returncode}")
    token = done.stdout.strip()
    if not token:
        raise ConfigError(f"{key}: token command printed nothing")
    return token
