"""Intake: every message stored exactly once, in one transaction with its pipeline rows.

Runs against the real Dovecot and on SQLite and PostgreSQL (the ``database`` fixture).
"""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text
from structlog.testing import capture_logs
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import TicketPipeline, append_many, message, settings_for

from triage.domain import InboundMessage
from triage.imap import FetchedMessage, StoreOutcome, SyncPlan
from triage.services.intake import Intake, Poller
from triage.store import Database
from triage.store.models import Folder, Message, Ticket

pytestmark = pytest.mark.imap

ARRIVED = datetime(2025, 1, 6, 8, 15, 30, tzinfo=UTC)


def _count(db: Database, model: type, *where: object) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _folder(db: Database, name: str = "INBOX") -> Folder:
    with db.session() as s:
        folder = s.scalar(select(Folder).where(Folder.name == name))
        assert folder is not None
        return folder


def test_poll_stores_each_message_once_with_its_progress(
    dovecot: Dovecot, imap_account: ImapAccount, database: Database, db_url: str, tmp_path: Path
) -> None:
    c = dovecot.client(imap_account)
    append_many(c, [message(n) for n in range(5)], msg_time=ARRIVED)
    c.logout()
    poller = Poller(settings_for(imap_account, db_url, tmp_path, batch_size=2), database)

    [result] = poller.poll_once()
    assert result.error == ""
    assert result.report is not None
    assert result.report.stored == 5

    with database.session() as s:
        rows = s.scalars(select(Message).order_by(Message.uid)).all()
        assert [r.uid for r in rows] == [1, 2, 3, 4, 5]
        first = rows[0]
        assert first.source == "imap"
        assert first.direction == "in"
        assert first.raw == message(0)
        assert first.raw_sha256 == hashlib.sha256(message(0)).hexdigest()
        assert first.raw_size == len(message(0))
        assert first.internal_date == ARRIVED
        assert first.received_at == ARRIVED  # the SLA clock starts at INTERNALDATE
        assert first.message_id == "<msg-0@example.net>"
        assert first.subject == "Request 0"
        assert first.from_addr == "client@example.net"
        assert first.to_addrs == [{"name": "", "addr": "inbox@example.test"}]
        assert first.parse_status == "ok"
        assert len({r.uidvalidity for r in rows}) == 1
    folder = _folder(database)
    assert folder.uidvalidity == rows[0].uidvalidity
    assert folder.last_uid == 5
    assert folder.last_poll_at is not None
    assert folder.last_error == ""

    [again] = poller.poll_once()
    assert again.report is not None
    assert again.report.handled == 0
    assert _count(database, Message) == 5


def test_two_workers_storing_the_same_uid_store_it_once(database: Database) -> None:
    raw = message(1)
    fetched = FetchedMessage(uid=1, raw=raw, internal_date=ARRIVED, size=len(raw))
    plan = SyncPlan(folder="INBOX", uidvalidity=777, first_uid=1)
    workers = [Intake(database), Intake(database)]
    workers[0].folder_id("INBOX")
    barrier = threading.Barrier(2)
    outcomes: list[StoreOutcome] = []

    def work(intake: Intake) -> None:
        barrier.wait()
        outcomes.append(intake.store(plan, fetched))

    threads = [threading.Thread(target=work, args=(w,)) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == sorted([StoreOutcome.STORED, StoreOutcome.DUPLICATE])
    assert _count(database, Message) == 1


def test_the_unique_key_catches_a_uid_stored_behind_the_progress(database: Database) -> None:
    """A row already present for (folder, UIDVALIDITY, UID) although the high-water mark
    lags (e.g. written by another worker's older code): the insert's IntegrityError is
    recognized as "already stored", not a failure."""
    intake = Intake(database)
    fid = intake.folder_id("INBOX")
    raw = message(1)
    with database.session() as s:
        s.add(
            Message(
                folder_id=fid,
                uidvalidity=777,
                uid=1,
                source="imap",
                direction="in",
                message_id="<other@x>",
                raw_sha256="0" * 64,
                raw=b"x",
                raw_size=1,
                received_at=ARRIVED,
            )
        )
    plan = SyncPlan(folder="INBOX", uidvalidity=777, first_uid=1)
    fetched = FetchedMessage(uid=1, raw=raw, internal_date=ARRIVED, size=len(raw))
    assert intake.store(plan, fetched) is StoreOutcome.DUPLICATE
    assert _count(database, Message) == 1


def test_the_pipeline_runs_in_the_same_transaction_and_a_failure_rolls_it_back(
    dovecot: Dovecot, imap_account: ImapAccount, database: Database, db_url: str, tmp_path: Path
) -> None:
    c = dovecot.client(imap_account)
    append_many(c, [message(1), message(2, subject="boom please"), message(3)])
    c.logout()
    pipeline = TicketPipeline(fail_subjects=("boom",))
    poller = Poller(settings_for(imap_account, db_url, tmp_path), database, pipeline=pipeline)
    with capture_logs() as logs:
        [result] = poller.poll_once()
    assert result.report is not None
    assert (result.report.stored, result.report.errors) == (2, 1)

    with database.session() as s:
        rows = {r.uid: r for r in s.scalars(select(Message)).all()}
        assert rows[1].parse_status == "ok"
        assert rows[3].parse_status == "ok"  # the message after the failure went through
        failed = rows[2]
        assert failed.parse_status == "error"
        assert "RuntimeError: pipeline exploded on 'boom please'" in failed.parse_error
        assert failed.raw == message(2, subject="boom please")  # nothing is lost
        tickets = {t.id: t for t in s.scalars(select(Ticket)).all()}
        # the ticket added before the exception was rolled back with the message;
        # the raw error row got the fallback one
        assert len(tickets) == 3
        assert tickets[failed.ticket_id].queue == "fallback"
        assert tickets[rows[1].ticket_id].queue == "general"
    assert _folder(database).last_uid == 3
    # the batch's transaction is first taken without savepoints (issue 18.2): the
    # failure rolls all of it back, and it is stored again with a savepoint per message
    assert pipeline.calls == [
        ("Request 1", "ok"),
        ("boom please", "ok"),
        ("Request 1", "ok"),
        ("boom please", "ok"),
        ("boom please", "error"),
        ("Request 3", "ok"),
    ]
    assert [e["uid"] for e in logs if e["event"] == "message_failed"] == [2]  # logged once


def test_a_pipeline_that_always_fails_still_keeps_the_raw_message(
    dovecot: Dovecot, imap_account: ImapAccount, database: Database, db_url: str, tmp_path: Path
) -> None:
    dovecot.append(imap_account, message(1))
    poller = Poller(
        settings_for(imap_account, db_url, tmp_path),
        database,
        pipeline=TicketPipeline(always_fail=True),
    )
    [result] = poller.poll_once()
    assert result.report is not None
    assert result.report.errors == 1
    with database.session() as s:
        row = s.scalars(select(Message)).one()
        assert row.parse_status == "error"
        assert row.ticket_id is None
        assert row.raw == message(1)
    assert _count(database, Ticket) == 0
    assert _folder(database).last_uid == 1


def test_input_the_parser_rejects_is_counted_as_stored_with_an_error(database: Database) -> None:
    """Not an email at all (binary): kept raw, and the counts say it had an error."""
    intake = Intake(database)
    raw = b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 4
    plan = SyncPlan(folder="INBOX", uidvalidity=5, first_uid=1)
    outcome = intake.store(plan, FetchedMessage(1, raw, ARRIVED, len(raw)))
    assert outcome is StoreOutcome.ERROR
    with database.session() as s:
        row = s.scalars(select(Message)).one()
        assert row.parse_status == "error"
        assert row.raw == raw


def test_a_parser_crash_is_stored_raw_with_the_error(database: Database) -> None:
    def broken_parser(raw: bytes, **kwargs: object) -> InboundMessage:
        raise UnicodeDecodeError("utf-8", raw, 0, 1, "simulated parser bug")

    intake = Intake(database, parse=broken_parser)
    raw = message(1)
    plan = SyncPlan(folder="INBOX", uidvalidity=5, first_uid=1)
    outcome = intake.store(plan, FetchedMessage(1, raw, ARRIVED, len(raw)))
    assert outcome is StoreOutcome.ERROR
    with database.session() as s:
        row = s.scalars(select(Message)).one()
        assert row.parse_status == "error"
        assert "simulated parser bug" in row.parse_error
        assert row.message_id.startswith("<synthetic.")
        assert row.received_at == ARRIVED
    assert intake.progress("INBOX").last_uid == 1


def test_the_parser_gets_max_size_when_it_accepts_it(database: Database) -> None:
    seen: dict[str, object] = {}

    def parser(raw: bytes, *, received_at: datetime, scope: str, max_size: int) -> InboundMessage:
        seen.update(received_at=received_at, scope=scope, max_size=max_size)
        return InboundMessage(message_id="<a@b>", subject="s", received_at=received_at)

    intake = Intake(database, parse=parser, max_message_size=4096)
    raw = message(1)
    intake.store(SyncPlan("INBOX", 5, 1), FetchedMessage(3, raw, ARRIVED, len(raw)))
    assert seen == {"received_at": ARRIVED, "scope": "INBOX/5/3", "max_size": 4096}


def test_hostile_header_values_are_stored_not_refused(database: Database) -> None:
    """NUL characters and over-long values would make PostgreSQL refuse the row."""
    raw = (
        b"From: \x00Evil\x00 <evil@example.net>\r\n"
        b"Subject: nul\x00inside\r\n"
        b"Message-ID: <" + b"x" * 1500 + b"@example.net>\r\n"
        b"In-Reply-To: <" + b"y" * 1500 + b"@example.net>\r\n\r\nbody\x00\r\n"
    )
    intake = Intake(database)
    plan = SyncPlan(folder="INBOX", uidvalidity=5, first_uid=1)
    assert intake.store(plan, FetchedMessage(1, raw, ARRIVED, len(raw))) is StoreOutcome.STORED
    with database.session() as s:
        row = s.scalars(select(Message)).one()
        assert row.raw == raw
        # an over-long Message-ID is not a usable one: the parser keeps it within the
        # column or synthesizes one; either way the row fits and nothing is refused
        assert 0 < len(row.message_id) <= 998
        assert len(row.in_reply_to) <= 998
        assert "\x00" not in row.subject
        assert "\x00" not in row.from_name


def test_failures_are_recorded_on_the_folder_and_cleared_by_the_next_pass(
    dovecot: Dovecot, imap_account: ImapAccount, database: Database, db_url: str, tmp_path: Path
) -> None:
    settings = settings_for(imap_account, db_url, tmp_path)
    assert settings.imap is not None
    Path(settings.imap.password_file).write_text("wrong")
    [failed] = Poller(settings, database).poll_once()
    assert "refused" in failed.error
    folder = _folder(database)
    assert "refused" in folder.last_error
    assert folder.last_poll_at is None

    Path(settings.imap.password_file).write_text(imap_account.password)
    [ok] = Poller(settings, database).poll_once()
    assert ok.error == ""
    folder = _folder(database)
    assert folder.last_error == ""
    assert folder.last_poll_at is not None


def test_messages_without_message_id_are_two_messages(  # noqa: PLR0917 - fixtures
    dovecot: Dovecot,
    imap_account: ImapAccount,
    database: Database,
    db_url: str,
    tmp_path: Path,
    cases_dir: Path,
) -> None:
    """B17: same From/Subject/Date, no Message-ID, different bodies: both stored."""
    for name in ("B17a-no-message-id.eml", "B17b-no-message-id.eml"):
        dovecot.append(imap_account, (cases_dir / name).read_bytes())
    [result] = Poller(settings_for(imap_account, db_url, tmp_path), database).poll_once()
    assert result.report is not None
    assert result.report.stored == 2
    with database.session() as s:
        rows = s.scalars(select(Message).order_by(Message.uid)).all()
        assert all(r.message_id_synthetic for r in rows)
        assert rows[0].message_id != rows[1].message_id


def test_a_database_error_in_the_pipeline_is_recorded_without_the_message_content(
    database: Database,
) -> None:
    class LeakyPipeline:
        def process(self, session: Any, _row: Message, message: InboundMessage) -> None:
            if message.parse_status == "ok":
                # a NOT NULL violation whose statement carries the body text
                session.execute(
                    text("INSERT INTO tickets (queue, subject) VALUES (:q, :s)"),
                    {"q": "x", "s": message.body_text},
                )

    secret_body = "Account number 1234-5678, please keep this private."
    raw = message(1, body=secret_body)
    intake = Intake(database, pipeline=LeakyPipeline())
    with capture_logs() as logs:
        outcome = intake.store(SyncPlan("INBOX", 5, 1), FetchedMessage(1, raw, ARRIVED, len(raw)))
    assert outcome is StoreOutcome.ERROR
    with database.session() as s:
        row = s.scalars(select(Message)).one()
        assert row.parse_error.startswith("IntegrityError: ")
        assert "1234-5678" not in row.parse_error
        assert "INSERT" not in row.parse_error
    assert "1234-5678" not in repr(logs)
