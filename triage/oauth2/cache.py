"""The token cache file: private (mode 0600), written atomically, never logged.

It holds a refresh token, which is a password in all but name: it is created
with mode 0600 from the start (never chmod-ed after a world-readable moment),
replaced atomically (a crash leaves the old file or the new one, never half),
and a file that others can read is refused until its mode is fixed.

A cache that cannot be used gives one :class:`~triage.errors.ConfigError` naming
``oauth2.token_cache``, the file and what to do, the same for ``triage run``,
``init``, ``poll --once`` and ``auth status``: not a file (a directory, a FIFO),
unreadable (permissions), others may read it, empty, not JSON, or JSON of the
wrong shape (:class:`UnusableCacheError`, which ``triage auth login`` replaces).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from triage.errors import ConfigError

__all__ = ["UnusableCacheError", "read_json_cache", "read_private", "unusable", "write_private"]


class UnusableCacheError(ConfigError):
    """The token cache file holds no usable sign-in: empty, corrupt or of the wrong shape.

    ``triage auth login`` replaces such a file (unlike one it may not read or write).

    Attributes:
        path: the cache file.
        reason: what is wrong with it (never its content).
    """

    def __init__(self, message: str, path: Path, reason: str) -> None:
        super().__init__(message)
        self.path = path
        self.reason = reason


def unusable(path: Path, reason: str, *, key: str = "oauth2.token_cache") -> UnusableCacheError:
    """The one message for an unusable cache: the key, the file, why, and what to run.

    ``reason`` must not quote the file's content (it holds a refresh token).
    """
    return UnusableCacheError(
        f"{key}: {path} is not a valid sign-in ({reason}); run `triage auth login`"
        " (it replaces the file)",
        path,
        reason,
    )


def read_private(path: Path, *, key: str = "oauth2.token_cache") -> str | None:
    """The file's text, or None when it does not exist.

    Raises:
        ConfigError: it cannot be read, or group/others may read or write it (the
            message gives the chmod that fixes it).
    """
    try:
        info = path.stat()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {_why(exc)}") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(
            f"{key}: {path} is a directory; the key names the cache file itself,"
            f" e.g. {path / 'oauth2-token.json'}"
        )
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{key}: {path} is not a regular file; name a file (mode 0600)")
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(
            f"{key}: {path} may be read by others (mode {stat.S_IMODE(info.st_mode):o});"
            f" it holds a refresh token: chmod 600 {path}"
        )
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise unusable(path, "not UTF-8 text", key=key) from None
    except OSError as exc:
        raise ConfigError(f"{key}: cannot read {path}: {_why(exc)}") from None


def _why(exc: OSError) -> str:
    reason = exc.strerror or type(exc).__name__
    if exc.errno in {errno.EACCES, errno.EPERM}:
        reason += " (it must be readable by the user triage runs as, e.g. chown triage)"
    return reason


def read_json_cache(path: Path, *, key: str = "oauth2.token_cache") -> dict[str, Any] | None:
    """The cache file as a JSON object, or None when the file does not exist.

    Raises:
        UnusableCacheError: the file is empty, not JSON, or not a JSON object.
        ConfigError: as :func:`read_private` (not a file, unreadable, others may read it).
    """
    text = read_private(path, key=key)
    if text is None:
        return None
    if not text.strip():
        raise unusable(path, "the file is empty", key=key)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        # position only: the message of a JSON error may quote the (secret) text
        raise unusable(
            path, f"corrupt JSON at line {exc.lineno} column {exc.colno}", key=key
        ) from None
    except ValueError:
        raise unusable(path, "corrupt JSON", key=key) from None
    if not isinstance(data, dict):
        kind = {list: "an array", str: "a string", bool: "true or false", type(None): "null"}
        raise unusable(
            path, f"JSON {kind.get(type(data), 'a number')} instead of an object", key=key
        )
    return data


def write_private(path: Path, text: str, *, key: str = "oauth2.token_cache") -> None:
    """Replace ``path`` with ``text``, mode 0600 from the first byte, atomically.

    Raises:
        ConfigError: the directory cannot be written.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"{key}: cannot write {path}: {exc.strerror}") from None
    try:
        os.fchmod(fd, 0o600)  # mkstemp makes 0600 already; say so explicitly
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        Path(tmp).replace(path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ConfigError(f"{key}: cannot write {path}: {exc.strerror}") from None
