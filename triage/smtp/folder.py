"""The dry-run sender: each mail becomes an .eml file in a folder (``[smtp] mode = "folder"``)."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path

from triage.errors import TemporarySendError
from triage.smtp.base import OutgoingMail, SendReceipt

__all__ = ["FolderSender", "eml_name"]

_UNSAFE = re.compile(r"[^A-Za-z0-9._@+-]+")


def eml_name(mail: OutgoingMail) -> str:
    """The file name for ``mail``: ``<outbox id, 8 digits>-<Message-ID made file-safe>.eml``.

    The same mail always gets the same name, so writing it again replaces the file
    instead of adding a copy.
    """
    stem = _UNSAFE.sub("_", mail.message_id.strip("<>"))[:150] or "mail"
    if mail.outbox_id is not None:
        return f"{mail.outbox_id:08d}-{stem}.eml"
    return f"{stem}.eml"


class FolderSender:
    """Writes each mail as ``folder/<name>.eml`` (RFC 5322 bytes, CRLF), atomically.

    The file appears complete or not at all (written to a temporary file in the
    same folder, flushed, then renamed). The envelope is not in the file; the
    To/Cc headers show the recipients. The folder is created when missing.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def __repr__(self) -> str:
        return f"FolderSender({self.folder})"

    def _write(self, mail: OutgoingMail) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        target = self.folder / eml_name(mail)
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".tmp-", suffix=".eml")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(mail.raw)
                handle.flush()
                os.fsync(handle.fileno())
            Path(tmp).replace(target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    async def send(self, mail: OutgoingMail) -> SendReceipt:
        """Write ``mail`` to its file; the receipt's reply is the path.

        Raises:
            TemporarySendError: the folder or file cannot be written (disk full,
                permissions); the dispatcher retries later.
        """
        try:
            path = await asyncio.to_thread(self._write, mail)
        except OSError as exc:
            raise TemporarySendError(
                f"cannot write to {self.folder}: {exc.strerror or exc}"
            ) from None
        return SendReceipt(reply=f"written to {path}")

    async def aclose(self) -> None:
        """Nothing to close."""
