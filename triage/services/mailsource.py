"""Reading mail from files for ``triage import``: an mbox file or a Maildir directory.

:func:`open_mail_source` checks what PATH is and refuses anything that is not
mail with one clear :class:`~triage.errors.ImportSourceError`. Iterating a
:class:`MailSource` yields each message's raw bytes with the best delivery time
the format knows (the mbox ``From`` line, the Maildir file name when it is a
plausible delivery time), used when the message has no usable Date header.
"""

from __future__ import annotations

import mailbox
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

from triage.errors import ImportSourceError

__all__ = [
    "MailSource",
    "SourceMessage",
    "maildir_date",
    "open_mail_source",
    "parse_from_line_date",
]

_FROM_LINE_DATE = re.compile(
    rb"(?P<date>(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) +[A-Z][a-z]{2} +\d{1,2}"
    rb" +\d{1,2}:\d{2}(?::\d{2})? +\d{4})"
)


@dataclass(frozen=True, slots=True)
class SourceMessage:
    """One message read from a file.

    Attributes:
        raw: the message bytes (without the mbox ``From`` line).
        fallback_date: the delivery time the format records (UTC), or None.
        key: where it came from inside the source (for messages).
    """

    raw: bytes
    fallback_date: datetime | None
    key: str


def parse_from_line_date(line: bytes) -> datetime | None:
    """The date of an mbox ``From sender Sat Jan  3 01:05:34 1996`` line, as UTC; None if absent.

    The line carries no zone (traditionally the local time of the delivering
    host); UTC is assumed.
    """
    match = _FROM_LINE_DATE.search(line)
    if not match:
        return None
    text = " ".join(match.group("date").decode("ascii").split())
    for fmt in ("%a %b %d %H:%M:%S %Y", "%a %b %d %H:%M %Y"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    return None


MAILDIR_EPOCH_MIN = datetime(1990, 1, 1, tzinfo=UTC)
"""Maildir file-name timestamps before this are not delivery times (Maildir dates from 1995)."""
_MAILDIR_TIME = re.compile(r"(\d{9,11})(?:\.|$)")
"""The delivery time at the start of a Maildir unique name: ``1700000000.M1P2.host``."""


def maildir_date(key: str, *, now: datetime | None = None) -> datetime | None:
    """The delivery time in a Maildir file name (UTC), or None when it holds no plausible one.

    Maildir unique names start with the delivery time in seconds since the epoch
    (``1700000000.M1P2.host``; https://cr.yp.to/proto/maildir.html). Files copied
    from other collections into ``cur/`` or ``new/`` are often named otherwise
    (SpamAssassin ``00001.7c53336b37003a9286aba55d2945844c``, 20 Newsgroups ``12345``):
    a name is trusted only when it starts with 9 to 11 digits followed by ``.`` or
    nothing, and the time lies between 1990 and one day after ``now`` (default: the
    current time). Otherwise the message's Date header is used (see
    :meth:`~triage.services.intake.Intake.import_message`).
    """
    match = _MAILDIR_TIME.match(key)
    if match is None:
        return None
    try:
        moment = datetime.fromtimestamp(int(match.group(1)), UTC)
    except (OverflowError, OSError, ValueError):
        return None
    latest = (now or datetime.now(UTC)) + timedelta(days=1)
    if not MAILDIR_EPOCH_MIN <= moment <= latest:
        return None
    return moment


class MailSource:
    """Messages in an mbox file or a Maildir, read lazily. ``len()`` counts them.

    Raises:
        ImportSourceError: (while iterating) the file became unreadable.
    """

    def __init__(self, path: Path, kind: Literal["mbox", "maildir"]) -> None:
        self.path = path
        self.kind = kind
        self._box: mailbox.Mailbox[mailbox.Message]
        if kind == "mbox":
            self._box = mailbox.mbox(path, create=False)
        else:
            self._box = mailbox.Maildir(path, create=False)
        try:
            self._keys = list(self._box.iterkeys())
        except OSError as exc:
            raise ImportSourceError(f"{path}: cannot read: {exc.strerror}") from None

    def __len__(self) -> int:
        return len(self._keys)

    def __iter__(self) -> Iterator[SourceMessage]:
        for key in self._keys:
            try:
                yield self._read(key)
            except KeyError:  # removed from a Maildir while importing
                continue
            except OSError as exc:
                raise ImportSourceError(f"{self.path}: cannot read: {exc.strerror}") from None

    def _read(self, key: str) -> SourceMessage:
        if isinstance(self._box, mailbox.mbox):
            with self._box.get_file(key, from_=True) as f:
                from_line = f.readline()
                raw = f.read()
            return SourceMessage(raw, parse_from_line_date(from_line), str(key))
        raw = self._box.get_bytes(key)
        return SourceMessage(raw, maildir_date(str(key)), str(key))

    def close(self) -> None:
        """Release the file (mbox)."""
        self._box.close()


def open_mail_source(path: str | os.PathLike[str]) -> MailSource:
    """Open ``path`` as a Maildir (a directory with ``cur/`` and ``new/``) or an mbox file.

    Raises:
        ImportSourceError: PATH does not exist, cannot be read, is empty, or is
            neither a Maildir nor a file starting with an mbox ``From`` line.
    """
    p = Path(path)
    if not p.exists():
        raise ImportSourceError(f"{p}: no such file or directory")
    if p.is_dir():
        if not ((p / "cur").is_dir() and (p / "new").is_dir()):
            raise ImportSourceError(
                f"{p}: a directory but not a Maildir (it has no cur/ and new/ folders)"
            )
        if not os.access(p / "cur", os.R_OK | os.X_OK) or not os.access(
            p / "new", os.R_OK | os.X_OK
        ):
            raise ImportSourceError(f"{p}: cannot read the Maildir (permission denied)")
        return MailSource(p, "maildir")
    try:
        with p.open("rb") as f:
            head = f.read(5)
    except OSError as exc:
        raise ImportSourceError(f"{p}: cannot read: {exc.strerror}") from None
    if not head:
        raise ImportSourceError(f"{p}: the file is empty")
    if head != b"From ":
        raise ImportSourceError(
            f"{p}: not an mbox file (it does not start with a 'From ' line);"
            " give an mbox file or a Maildir directory"
        )
    return MailSource(p, "mbox")
