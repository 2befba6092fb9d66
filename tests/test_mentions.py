"""@name in an internal note: the assistant is told by mail once, in their language."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs
from support.smtp import SmtpServer

from triage.accounts import add_user
from triage.clock import FixedClock
from triage.config import Settings, parse_config
from triage.desk import TicketDesk
from triage.escalation import mail_mentions
from triage.services.dispatch import Dispatcher
from triage.smtp import SmtpSender
from triage.store import Database
from triage.store.models import Mention, Message, OutboxMail, Ticket

NOW = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def make_settings(tmp_path: Path) -> Settings:
    data = {
        "smtp": {"mode": "folder", "from_address": "Office <inbox@example.com>"},
        "team": {
            "name": "Example Office",
            "assistants": {"anna": "anna@example.com", "bela": "Béla <bela@example.com>"},
        },
        "queues": {"unsorted": {}, "billing": {"assistants": ["anna"]}},
        "calendar": {"timezone": "Europe/Budapest"},
        "web": {"base_url": "https://desk.example.com"},
    }
    return parse_config(data, source="test.toml", base_dir=tmp_path)


def add_ticket(db: Database, ref: int = 1042) -> None:
    with db.session() as s:
        ticket = Ticket(
            ref=ref,
            queue="billing",
            priority="normal",
            status="open",
            subject="Számla kérdés",
            client_addr="client@example.net",
            client_name="Client",
            opened_at=NOW - timedelta(hours=1),
        )
        s.add(ticket)
        s.flush()
        s.add(
            Message(
                source="imap",
                direction="in",
                message_id=f"<m{ref}@example.net>",
                raw_sha256="0" * 64,
                raw=b"x",
                raw_size=1,
                received_at=NOW - timedelta(hours=1),
                from_addr="client@example.net",
                subject=ticket.subject,
                body_text="Hello",
                ticket_id=ticket.id,
            )
        )


def parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def outbox(db: Database) -> list[OutboxMail]:
    with db.read_session() as s:
        rows = list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))
        s.expunge_all()
    return rows


def test_each_mentioned_assistant_is_mailed_once_in_their_language(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    db = Database.open(sqlite_url)
    try:
        add_ticket(db)
        with db.session() as s:
            add_user(s, settings, "bela", role="assistant", password="x" * 12, now=NOW)
            s.flush()
            from triage.store.models import User  # noqa: PLC0415

            s.scalars(select(User).where(User.name == "bela")).one().language = "hu"
        desk = TicketDesk(db, settings, clock=FixedClock(NOW))
        desk.note(1042, "@bela @anna nézzétek meg, @nobody", actor="anna")
        with db.session() as s:
            assert mail_mentions(s, settings, NOW) == 2
        with db.session() as s:
            assert mail_mentions(s, settings, NOW) == 0  # never twice
            assert all(m.notified_at is not None for m in s.scalars(select(Mention)))
        mails = outbox(db)
        assert [m.kind for m in mails] == ["mention", "mention"]
        by_rcpt = {tuple(m.rcpt_to): parsed(m.raw) for m in mails}
        bela = by_rcpt[("bela@example.com",)]
        assert bela["Subject"] == "[#1042] anna megemlített - Számla kérdés"
        assert "https://desk.example.com/t/1042" in bela.get_content()
        assert "@bela @anna nézzétek meg" in bela.get_content()
        assert bela["Auto-Submitted"] == "auto-generated"
        anna = by_rcpt[("anna@example.com",)]
        assert anna["Subject"] == "[#1042] anna mentioned you - Számla kérdés"
    finally:
        db.dispose()


def test_an_assistant_who_left_the_team_is_marked_and_logged(
    sqlite_url: str, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    db = Database.open(sqlite_url)
    try:
        add_ticket(db)
        TicketDesk(db, settings, clock=FixedClock(NOW)).note(1042, "@bela look", actor="anna")
        later = settings.model_copy(
            update={
                "team": settings.team.model_copy(update={"assistants": {"anna": "a@x.example"}})
            }
        )
        with capture_logs() as logs, db.session() as s:
            assert mail_mentions(s, later, NOW) == 0
        assert [e["event"] for e in logs] == ["mention_not_mailed"]
        assert outbox(db) == []
        with db.read_session() as s:
            assert s.scalars(select(Mention)).one().notified_at is not None
    finally:
        db.dispose()


@pytest.mark.smtp
def test_the_daemons_watch_pass_mails_a_mention_over_smtp(
    sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    from triage.daemon import Daemon  # noqa: PLC0415

    settings = make_settings(tmp_path)
    db = Database.open(sqlite_url)
    try:
        add_ticket(db)
        TicketDesk(db, settings, clock=FixedClock(NOW)).note(
            1042, "@anna please call", actor="bela"
        )
        daemon = Daemon(settings, db, clock=FixedClock(NOW))
        assert daemon.sla_pass() >= 1
        sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
        assert asyncio.run(Dispatcher(db, sender, clock=FixedClock(NOW)).run_once()).sent == 1
    finally:
        db.dispose()
    [got] = smtp_server.sink.wait_for(1)
    assert got.rcpt_tos == ["anna@example.com"]
    assert "bela mentioned you" in parsed(got.content)["Subject"]
