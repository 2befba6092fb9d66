"""The send journal: "the SMTP server accepted this mail", durable even when the database is not.

The dispatcher records an accepted mail as ``sent`` in the database. When that
write fails (the disk is full, the database unreachable) the row stays
``pending`` and would be sent again once its lease ran out: a second
acknowledgment. The journal closes that gap:

1. before a mail is handed to the server, a slot records "sending <outbox row,
   Message-ID>" and is flushed to disk (``fdatasync``); when that fails, the mail
   is not sent;
2. right after the server accepted it, the slot says "accepted" (flushed again);
3. once the database says ``sent`` (or the failure is recorded), the slot is freed.

Before claiming rows, and before sending any row, the dispatcher consults the
journal: a row it lists as accepted is recorded as sent, never sent again, also
after a restart (the next process replays the file).

The file is **preallocated** (``slots`` x :data:`SLOT_BYTES`, zeros written and
flushed when it is created), and every record is written in place in its slot: a
full disk cannot stop steps 2 and 3, because no new block is needed. A slot that
cannot be parsed (a write torn by a power cut) is reported and freed.

Several processes on one database (``triage run`` and a ``triage poll --once``)
each lock their own file, ``<path>``, ``<path>.1``, ... up to :data:`MAX_FILES`,
taking the first one free; a restarted daemon takes the same file again and so
replays what its predecessor left.

Left open: a crash between the end of DATA and the server's reply leaves a
"sending" slot whose outcome no one knows; the row is then sent again with the
same Message-ID (as before), and the replay logs ``mail_outcome_unknown``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from triage.errors import StoreError
from triage.logs import get_logger

__all__ = ["MAX_FILES", "SLOT_BYTES", "Accepted", "SendJournal", "message_key"]

SLOT_BYTES = 512
"""Size of one record in the file; a record is JSON, padded with spaces, then a newline."""
MAX_FILES = 8
"""Journal files tried (one per process sending at the same time on one database)."""
_FREE = b"\0"


def log() -> Any:
    """The module's logger, bound at each call so it follows the logging configuration."""
    return get_logger("triage.dispatch")


def message_key(message_id: str) -> str:
    """The Message-ID as kept in the journal: the first 32 hex digits of its SHA-256."""
    return hashlib.sha256(message_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Accepted:
    """A mail the server accepted whose ``sent`` the database may not have yet.

    Attributes:
        outbox_id: the outbox row.
        key: :func:`message_key` of its Message-ID (to recognise the same mail).
        at: when the server accepted it (UTC).
        reply: the server's reply to DATA (shortened).
    """

    outbox_id: int
    key: str
    at: datetime
    reply: str


class SendJournal:
    """Slots in a preallocated file (or, with ``path`` None, in memory only).

    Args:
        path: the journal file (the first of the family; see the module docstring);
            None keeps records in memory only (no protection across a restart).
        slots: records the file holds at once (mail in flight plus accepted mail
            not yet recorded in the database).

    Raises:
        StoreError: the file cannot be created, preallocated or locked (names it).
    """

    def __init__(self, path: Path | None, *, slots: int = 256) -> None:
        self.slots = slots
        self._lock = threading.Lock()
        self._fd: int | None = None
        self.path: Path | None = None
        self._used: dict[int, dict[str, Any]] = {}
        self._free = list(range(slots - 1, -1, -1))
        self.unknown: list[tuple[int, str]] = []
        """``(outbox_id, key)`` a previous process was sending when it stopped."""
        if path is not None:
            self._open(path)

    # -- the file ------------------------------------------------------------------------

    def _open(self, first: Path) -> None:
        problem = ""
        for n in range(MAX_FILES):
            path = first if n == 0 else first.with_name(f"{first.name}.{n}")
            try:
                fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            except OSError as exc:
                raise StoreError(
                    f"smtp.journal: cannot open the send journal {path}: {exc.strerror}"
                ) from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                problem = f"{path} and the others are in use"
                continue
            try:
                self._prepare(fd, path)
            except OSError as exc:
                os.close(fd)
                raise StoreError(
                    f"smtp.journal: cannot preallocate the send journal {path}: {exc.strerror}"
                ) from None
            self._fd, self.path = fd, path
            return
        raise StoreError(f"smtp.journal: no send journal free: {problem}")

    def _prepare(self, fd: int, path: Path) -> None:
        size = self.slots * SLOT_BYTES
        have = os.fstat(fd).st_size
        if have < size:
            os.pwrite(fd, b"\0" * (size - have), have)  # real blocks, not a sparse hole
            os.fsync(fd)
            with contextlib.suppress(OSError):  # the directory entry of a new file
                dfd = os.open(path.parent, os.O_RDONLY)
                try:
                    os.fsync(dfd)
                finally:
                    os.close(dfd)
        data = os.pread(fd, size, 0)
        for slot in range(self.slots):
            raw = data[slot * SLOT_BYTES : (slot + 1) * SLOT_BYTES]
            if raw[:1] == _FREE:
                continue
            try:
                record = json.loads(raw.decode("utf-8"))
                outbox_id, key, state = int(record["o"]), str(record["k"]), record["s"]
            except (ValueError, KeyError, TypeError):
                log().warning("send_journal_slot_unreadable", journal=str(path), slot=slot)
                self._clear(fd, slot)
                continue
            if state == "accepted" and "t" in record:
                self._used[slot] = record
                self._free.remove(slot)
            else:
                self.unknown.append((outbox_id, key))
                self._clear(fd, slot)

    @staticmethod
    def _clear(fd: int, slot: int) -> None:
        os.pwrite(fd, b"\0" * SLOT_BYTES, slot * SLOT_BYTES)

    def _write(self, slot: int, record: dict[str, Any]) -> None:
        """Put ``record`` in ``slot`` and flush it to disk. Raises OSError."""
        if self._fd is None:
            return
        body = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode()
        if len(body) >= SLOT_BYTES:  # the reply is the only free text: shorten it
            record = {**record, "r": str(record.get("r", ""))[:100]}
            body = json.dumps(record, ensure_ascii=True, separators=(",", ":")).encode()
        os.pwrite(self._fd, body.ljust(SLOT_BYTES - 1) + b"\n", slot * SLOT_BYTES)
        os.fdatasync(self._fd)

    # -- the records ---------------------------------------------------------------------

    def begin(self, outbox_id: int, message_id: str) -> int:
        """Record "sending" for a mail about to be handed over; returns its slot.

        Raises:
            StoreError: no free slot, or the record could not be flushed to disk: do
                not send the mail (it could not be recognised after a failure).
        """
        record = {"s": "sending", "o": outbox_id, "k": message_key(message_id)}
        with self._lock:
            if not self._free:
                raise StoreError(f"the send journal is full ({self.slots} mail unrecorded)")
            slot = self._free.pop()
            self._used[slot] = record
        try:
            self._write(slot, record)
        except OSError as exc:
            self._release(slot)
            raise StoreError(f"the send journal cannot be written: {exc.strerror}") from None
        return slot

    def accepted(self, slot: int, at: datetime, reply: str) -> None:
        """Record that the server accepted the mail in ``slot`` (flushed to disk).

        Never raises: a write that fails leaves the record in memory (this process
        still will not send the mail again) and is logged as ``send_journal_failed``.
        """
        with self._lock:
            record = {**self._used[slot], "s": "accepted", "t": at.isoformat(), "r": reply[:200]}
            self._used[slot] = record
        try:
            self._write(slot, record)
        except OSError as exc:
            log().error("send_journal_failed", journal=str(self.path), error=exc.strerror)

    def done(self, slot: int) -> None:
        """Free ``slot``: the database has the outcome. Not flushed (a stale "accepted"
        for a row already sent is harmless; the replay only records pending rows)."""
        if self._fd is not None:
            with contextlib.suppress(OSError):
                self._clear(self._fd, slot)
        self._release(slot)

    def _release(self, slot: int) -> None:
        with self._lock:
            if self._used.pop(slot, None) is not None:
                self._free.append(slot)

    def accepted_slots(self) -> dict[int, Accepted]:
        """Every accepted mail not yet recorded, by slot (this process's and those left over)."""
        with self._lock:
            items = list(self._used.items())
        found = {}
        for slot, record in items:
            if record.get("s") != "accepted":
                continue
            at = datetime.fromisoformat(str(record["t"]))
            found[slot] = Accepted(int(record["o"]), str(record["k"]), at, str(record["r"]))
        return found

    def was_accepted(self, outbox_id: int, message_id: str) -> tuple[int, Accepted] | None:
        """The slot and record saying this mail was already accepted, or None."""
        key = message_key(message_id)
        for slot, accepted in self.accepted_slots().items():
            if accepted.outbox_id == outbox_id and accepted.key == key:
                return slot, accepted
        return None

    def close(self) -> None:
        """Release the file (its lock); the records stay for the next process."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
