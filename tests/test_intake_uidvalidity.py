"""B27: UIDVALIDITY changes and UIDs restart at 1 (../shared/cases/B27-uidvalidity-change.md).

Reproduced on the real Dovecot as a mailbox migration: the watched folder is
deleted and re-created (UIDs start again at 1), its UIDVALIDITY set with doveadm,
and one old message plus two new ones are delivered into it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import TicketPipeline, append_many, message, settings_for

from triage.services.intake import Poller
from triage.store import Database
from triage.store.models import Folder, Message, Ticket

pytestmark = pytest.mark.imap

FOLDER = "Clients"
OLD_UIDVALIDITY = 1738166580
NEW_UIDVALIDITY = 1738166710


def _old(n: int) -> bytes:
    return message(n, message_id=f"<old-{n}@mail.example.com>", subject=f"Old {n}")


def _new(n: int) -> bytes:
    return message(100 + n, message_id=f"<new-{n}@mail.example.com>", subject=f"New {n}")


def _day_one(dovecot: Dovecot, account: ImapAccount, poller: Poller) -> None:
    c = dovecot.client(account)
    c.create_folder(FOLDER)
    append_many(c, [_old(n) for n in range(1, 43)], folder=FOLDER)
    c.logout()
    dovecot.set_uidvalidity(account, FOLDER, OLD_UIDVALIDITY)
    [result] = poller.poll_once()
    assert result.report is not None
    assert result.report.stored == 42


def _migrate(dovecot: Dovecot, account: ImapAccount) -> None:
    c = dovecot.client(account)
    c.delete_folder(FOLDER)
    c.create_folder(FOLDER)
    c.logout()
    dovecot.set_uidvalidity(account, FOLDER, NEW_UIDVALIDITY)
    c = dovecot.client(account)
    append_many(c, [_old(17), _new(1), _new(2)], folder=FOLDER)
    state = c.select_folder(FOLDER, readonly=True)
    c.logout()
    assert state[b"UIDVALIDITY"] == NEW_UIDVALIDITY
    assert state[b"UIDNEXT"] == 4  # UIDs 1..3 again


def _tickets_by_message_id(db: Database) -> dict[str, int]:
    with db.session() as s:
        rows = s.execute(
            select(Message.message_id, func.count(Ticket.id))
            .join(Ticket, Ticket.id == Message.ticket_id)
            .group_by(Message.message_id)
        ).all()
    return dict(rows)


def test_uidvalidity_change_rescans_without_duplicating_old_mail(
    dovecot: Dovecot, imap_account: ImapAccount, database: Database, db_url: str, tmp_path: Path
) -> None:
    pipeline = TicketPipeline()
    settings = settings_for(imap_account, db_url, tmp_path, folders=[FOLDER])
    poller = Poller(settings, database, pipeline=pipeline)
    _day_one(dovecot, imap_account, poller)
    _migrate(dovecot, imap_account)
    pipeline.calls.clear()

    with capture_logs() as logs:
        [result] = poller.poll_once()

    report = result.report
    assert report is not None
    assert report.rescan
    assert (report.stored, report.recognized, report.errors) == (2, 1, 0)
    # the old mail got no second ticket; the two new ones got one each
    assert [subject for subject, _ in pipeline.calls] == ["New 1", "New 2"]
    tickets = _tickets_by_message_id(database)
    assert tickets["<old-17@mail.example.com>"] == 1
    assert tickets["<new-1@mail.example.com>"] == 1
    assert tickets["<new-2@mail.example.com>"] == 1
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 44
        new_rows = s.execute(
            select(Message.uid, Message.message_id)
            .where(Message.uidvalidity == NEW_UIDVALIDITY)
            .order_by(Message.uid)
        ).all()
        assert [tuple(r) for r in new_rows] == [
            (2, "<new-1@mail.example.com>"),
            (3, "<new-2@mail.example.com>"),
        ]
        folder = s.scalars(select(Folder).where(Folder.name == FOLDER)).one()
        assert (folder.uidvalidity, folder.last_uid) == (NEW_UIDVALIDITY, 3)
    changed = [e for e in logs if e["event"] == "uidvalidity_changed"]
    assert len(changed) == 1
    assert (changed[0]["old"], changed[0]["new"], changed[0]["folder"]) == (
        OLD_UIDVALIDITY,
        NEW_UIDVALIDITY,
        FOLDER,
    )
    recognized = [e for e in logs if e["event"] == "message_duplicate"]
    assert [(e["uid"], e["message_id"]) for e in recognized] == [(1, "<old-17@mail.example.com>")]

    # the next pass is an ordinary incremental one under the new UIDVALIDITY
    dovecot.append(imap_account, _new(3), folder=FOLDER)
    [after] = poller.poll_once()
    assert after.report is not None
    assert not after.report.rescan
    assert after.report.stored == 1
    with database.session() as s:
        assert s.scalar(select(Folder.last_uid).where(Folder.name == FOLDER)) == 4


def test_an_interrupted_rescan_keeps_the_old_progress_and_resumes(
    dovecot: Dovecot, imap_account: ImapAccount, database: Database, db_url: str, tmp_path: Path
) -> None:
    stop = threading.Event()

    class StopAfterFirst(TicketPipeline):
        def process(self, session: Any, row: Any, message: Any) -> None:
            super().process(session, row, message)
            stop.set()  # as if SIGTERM arrived while this message was being stored

    pipeline = StopAfterFirst()
    settings = settings_for(imap_account, db_url, tmp_path, folders=[FOLDER])
    poller = Poller(settings, database, pipeline=pipeline)
    _day_one(dovecot, imap_account, Poller(settings, database))
    _migrate(dovecot, imap_account)

    interrupted = poller.watchers[0].poll_once(stop)
    assert not interrupted.complete
    assert (interrupted.recognized, interrupted.stored) == (1, 1)
    with database.session() as s:
        folder = s.scalars(select(Folder).where(Folder.name == FOLDER)).one()
        # new UIDVALIDITY only once the whole rescan has committed
        assert (folder.uidvalidity, folder.last_uid) == (OLD_UIDVALIDITY, 42)

    with capture_logs() as logs:
        resumed = poller.watchers[0].poll_once(threading.Event())
    assert resumed.rescan
    assert resumed.complete
    assert (resumed.stored, resumed.recognized) == (1, 1)
    assert next(e for e in logs if e["event"] == "uidvalidity_changed")["resumed"] is True
    assert [subject for subject, _ in pipeline.calls] == ["New 1", "New 2"]
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 44
        folder = s.scalars(select(Folder).where(Folder.name == FOLDER)).one()
        assert (folder.uidvalidity, folder.last_uid) == (NEW_UIDVALIDITY, 3)


def test_a_rescan_recognizes_messages_without_message_id_by_their_bytes(  # noqa: PLR0917 - fixtures
    dovecot: Dovecot,
    imap_account: ImapAccount,
    database: Database,
    db_url: str,
    tmp_path: Path,
    cases_dir: Path,
) -> None:
    raws = [(cases_dir / f"B17{x}-no-message-id.eml").read_bytes() for x in "ab"]
    c = dovecot.client(imap_account)
    c.create_folder(FOLDER)
    append_many(c, raws, folder=FOLDER)
    c.logout()
    dovecot.set_uidvalidity(imap_account, FOLDER, OLD_UIDVALIDITY)
    settings = settings_for(imap_account, db_url, tmp_path, folders=[FOLDER])
    poller = Poller(settings, database)
    [first] = poller.poll_once()
    assert first.report is not None
    assert first.report.stored == 2

    dovecot.set_uidvalidity(imap_account, FOLDER, NEW_UIDVALIDITY)
    [second] = poller.poll_once()
    assert second.report is not None
    assert (second.report.rescan, second.report.recognized, second.report.stored) == (True, 2, 0)
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 2
