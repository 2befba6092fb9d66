"""The send journal: an accepted mail is never sent twice, even with the database's disk full.

The disk-full test mounts a small tmpfs (needs root; skipped otherwise, saying so)
and puts the SQLite database and its journal on it; the SMTP server (a real
aiosmtpd) fills the disk while it accepts the first mail, so recording "sent"
fails with SQLite's real "database or disk is full".
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError
from structlog.testing import capture_logs
from support.smtp import SmtpServer, SmtpSink

from triage.clock import FixedClock
from triage.errors import StoreError
from triage.outbox import ComposedMail, build_mail, enqueue
from triage.services import dispatch
from triage.services.dispatch import Dispatcher, journal_path
from triage.services.sendjournal import SLOT_BYTES, SendJournal
from triage.smtp import SmtpSender
from triage.store import Database
from triage.store.models import OutboxMail

pytestmark = pytest.mark.smtp

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def queue_mail(db: Database, count: int) -> list[str]:
    ids = []
    with db.session() as s:
        for i in range(count):
            mid = f"<ack.{i}.journal@example.com>"
            raw = build_mail(
                message_id=mid,
                sender=("Office", "inbox@example.com"),
                to=[("", f"client{i}@example.net")],
                subject=f"Re: question {i} [#{i}]",
                body="Thank you, we have it.\n",
                now=T0,
                auto_submitted="auto-replied",
            )
            mail = ComposedMail(mid, "inbox@example.com", (f"client{i}@example.net",), raw)
            enqueue(s, mail, kind="ack", now=T0, dedupe_key=f"journal:{i}")
            ids.append(mid)
    return ids


def outbox(db: Database) -> list[OutboxMail]:
    with db.session() as s:
        return list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))


def received_ids(server: SmtpServer) -> list[str]:
    return [str(r.message["Message-ID"]) for r in server.sink.messages]


# -- the journal file -----------------------------------------------------------------


def test_the_file_is_preallocated_and_an_accepted_record_survives_a_restart(
    tmp_path: Path,
) -> None:
    path = tmp_path / "send-journal"
    journal = SendJournal(path, slots=8)
    assert path.stat().st_size == 8 * SLOT_BYTES
    assert path.stat().st_blocks * 512 >= 8 * SLOT_BYTES  # real blocks, not a sparse hole
    sending = journal.begin(1, "<a@x>")
    accepted = journal.begin(2, "<b@x>")
    journal.accepted(accepted, T0, "250 2.0.0 Ok: queued as 4F1")
    freed = journal.begin(3, "<c@x>")
    journal.done(freed)
    assert journal.was_accepted(2, "<b@x>") is not None
    assert journal.was_accepted(2, "<other@x>") is None
    assert journal.was_accepted(1, "<a@x>") is None
    assert sending != accepted
    journal.close()

    again = SendJournal(path, slots=8)
    [(slot, record)] = again.accepted_slots().items()
    assert (record.outbox_id, record.at, record.reply) == (2, T0, "250 2.0.0 Ok: queued as 4F1")
    assert [outbox_id for outbox_id, _ in again.unknown] == [1]  # was being sent: unknown
    again.done(slot)
    again.close()
    assert SendJournal(path, slots=8).accepted_slots() == {}


def test_a_second_process_takes_its_own_file(tmp_path: Path) -> None:
    path = tmp_path / "send-journal"
    first = SendJournal(path, slots=4)
    second = SendJournal(path, slots=4)
    assert first.path == path
    assert second.path == tmp_path / "send-journal.1"
    first.close()
    second.close()


def test_a_torn_slot_is_reported_and_freed(tmp_path: Path) -> None:
    path = tmp_path / "send-journal"
    SendJournal(path, slots=4).close()
    with path.open("r+b") as f:
        f.seek(SLOT_BYTES)
        f.write(b'{"s":"accep')
    with capture_logs() as logs:
        journal = SendJournal(path, slots=4)
    assert [e["event"] for e in logs] == ["send_journal_slot_unreadable"]
    assert journal.accepted_slots() == {}
    journal.close()


def test_the_journal_goes_beside_the_sqlite_file(sqlite_url: str) -> None:
    db = Database.open(sqlite_url)
    try:
        path = journal_path(db)
        assert path is not None
        assert path.name.endswith(".send-journal")
        assert path.parent == Path(sqlite_url.removeprefix("sqlite:///")).parent
    finally:
        db.dispose()


class BrokenJournal(SendJournal):
    """A journal whose disk fails every write (EIO): a fault no test file system shows."""

    def _write(self, slot: int, record: dict[str, Any]) -> None:  # noqa: ARG002 - the fault
        raise OSError(errno.EIO, os.strerror(errno.EIO))


def test_a_mail_whose_sending_record_cannot_be_written_is_not_sent(
    sqlite_url: str, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    db = Database.open(sqlite_url)
    try:
        queue_mail(db, 2)
        sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
        d = Dispatcher(db, sender, clock=FixedClock(T0), journal=BrokenJournal(tmp_path / "broken"))
        with capture_logs() as logs:
            stats = asyncio.run(d.run_once())
        assert (stats.sent, stats.deferred) == (0, 2)
        assert smtp_server.sink.attempts == 0
        assert [r.attempts for r in outbox(db)] == [1, 1]
        assert "send journal cannot be written" in outbox(db)[0].last_error
        assert [e["event"] for e in logs].count("send_journal_failed") == 1
    finally:
        db.dispose()


def test_an_unwritable_journal_location_names_the_key(tmp_path: Path) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    with pytest.raises(StoreError, match=r"smtp\.journal"):
        SendJournal(blocked / "send-journal")


# -- the database on a full disk --------------------------------------------------------


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs (root only): the database's disk, to fill."""
    mount = tmp_path / "fs"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=4m,mode=0700", "tmpfs", str(mount)],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> None:
    """Write zeros into ``directory`` until the file system says ENOSPC."""
    fd = os.open(directory / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 65536)
        with contextlib.suppress(OSError):
            while True:
                os.write(fd, b"\0" * 512)
    finally:
        os.close(fd)


class FillingSink(SmtpSink):
    """Accepts every mail; while accepting the first, fills ``directory``'s disk."""

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.directory = directory

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        if not self.messages:
            fill(self.directory)
        return await super().handle_DATA(server, session, envelope)


@pytest.mark.parametrize("restart", [False, True], ids=["same-process", "restarted"])
def test_disk_full_after_the_server_accepted_never_sends_the_mail_twice(
    small_fs: Path, restart: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(dispatch, "SENT_MARK_RETRIES", (0.01, 0.01, None))
    server = SmtpServer()
    server.sink = FillingSink(small_fs)
    server.controller.loop.close()  # the unused first controller's
    server.controller = server._make_controller()  # with the filling sink
    server.start()
    db = Database.open(f"sqlite:///{small_fs / 'triage.db'}")
    clock = FixedClock(T0)
    try:
        ids = queue_mail(db, 3)

        def dispatcher() -> Dispatcher:
            sender = SmtpSender("127.0.0.1", server.port, security="none", timeout=5)
            return Dispatcher(db, sender, clock=clock, lease=210.0)

        d = dispatcher()
        with capture_logs() as logs:
            stats = asyncio.run(d.run_once())
        # all three were leased before the disk filled (one chunk) and the server has
        # them; the database could take none of the "sent"
        assert stats.sent == 3
        assert received_ids(server) == ids
        assert "mail_sent_not_recorded" in [e["event"] for e in logs]
        with pytest.raises(OperationalError, match="full"), db.session() as s:
            s.execute(update(OutboxMail).values(last_error="probe"))
        assert [r.status for r in outbox(db)] == ["pending"] * 3

        # its lease runs out while the disk is still full: nothing goes out again
        clock.advance(timedelta(seconds=300))
        if restart:
            d.close()
            d = dispatcher()
        with pytest.raises(OperationalError):
            asyncio.run(d.run_once())
        assert received_ids(server) == ids

        # space again: all three are recorded from the journal, none is sent again
        (small_fs / "filler").unlink()
        clock.advance(timedelta(seconds=300))
        if restart:
            d.close()
            d = dispatcher()
        with capture_logs() as logs:
            stats = asyncio.run(d.run_once())
        assert stats.sent == 3
        assert "mail_sent_recorded_late" in [e["event"] for e in logs]
        assert received_ids(server) == ids  # each exactly once
        rows = outbox(db)
        assert [r.status for r in rows] == ["sent"] * 3
        assert [r.sent_at for r in rows] == [T0] * 3  # when the server accepted them
        assert [r.attempts for r in rows] == [1] * 3
        assert d.journal.accepted_slots() == {}
        d.close()
    finally:
        db.dispose()
        server.stop()
