"""The token cache file: private (mode 0600), written atomically, never logged.

It holds a refresh token, which is a password in all but name: it is created
with mode 0600 from the start (never chmod-ed after a world-readable moment),
replaced atomically (a crash leaves the old file or the new one, never half),
and a file that others can read is refused until its mode is fixed.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from triage.errors import ConfigError

__all__ = ["read_private", "write_private"]


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
        raise ConfigError(f"{key}: cannot read {path}: {exc.strerror}") from None
    if stat.S_IMODE(info.st_mode) & 0o077:
        raise ConfigError(
            f"{key}: {path} may be read by others (mode {stat.S_IMODE(info.st_mode):o});"
            f" it holds a refresh token: chmod 600 {path}"
        )
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{key}: cannot read {path}: {exc}") from None


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
