"""The intake's rows written with SQLAlchemy Core (issue 18.2), on both databases.

The message row is inserted once, after the decision, with its ticket: no UPDATE of
the new message (nor of the new ticket), the acknowledgment queued by one INSERT that
does nothing for a dedupe key already queued, and the columns the ORM's insert hooks
used to fill (the queue's sort key, ``has_html``) filled the same way.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select

from triage.assembly import assemble
from triage.clock import FixedClock
from triage.config import Settings, load_config
from triage.imap.responses import FetchedMessage
from triage.imap.watch import StoreOutcome, SyncPlan
from triage.outbox.compose import ComposedMail
from triage.outbox.enqueue import enqueue_row
from triage.services.pipeline import ModelHolder
from triage.store import Database
from triage.store.models import Message, OutboxMail, Ticket, queue_key

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///triage.db"', f'url = "{db_url}"')
    text = text.replace('mode = "send"', 'mode = "folder"')
    path = tmp_path / "triage.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def _mail(subject: str, body: str, message_id: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = "Emma Walker <emma.walker@bakery-example.com>"
    msg["To"] = "Example Office <inbox@example.com>"
    msg["Subject"] = subject
    msg["Date"] = "Tue, 24 Nov 2026 09:55:00 +0000"
    msg["Message-ID"] = message_id
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    msg.add_alternative(f"<p>{body}</p>", subtype="html")
    return msg.as_bytes()


def test_a_new_message_and_its_follow_up_are_inserted_once_with_their_ticket(
    database: Database, settings: Settings
) -> None:
    parts = assemble(settings, database, clock=FixedClock(NOW), models=ModelHolder(), poll=False)
    statements: list[str] = []

    def record(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split()))

    first = _mail("Question about invoice 2026112", "The amount is wrong.", "<q1@bakery.example>")
    reply = _mail(
        "Re: Question about invoice 2026112",
        "And the date too.",
        "<q2@bakery.example>",
        in_reply_to="<q1@bakery.example>",
    )
    event.listen(database.engine, "before_cursor_execute", record)
    try:
        for uid, raw in ((1, first), (2, reply)):
            plan = SyncPlan(folder="INBOX", uidvalidity=7, first_uid=uid)
            outcome = parts.intake.store(plan, FetchedMessage(uid, raw, NOW, len(raw)))
            assert outcome is StoreOutcome.STORED
    finally:
        event.remove(database.engine, "before_cursor_execute", record)

    assert not [s for s in statements if s.startswith("UPDATE messages")]
    assert len([s for s in statements if s.startswith("INSERT INTO messages")]) == 2
    outbox = [s for s in statements if "outbox" in s.split(" WHERE ")[0] and "INSERT" in s]
    assert len(outbox) == 1  # the acknowledgment: one INSERT ... ON CONFLICT DO NOTHING
    assert "ON CONFLICT" in outbox[0]
    assert not [s for s in statements if s.startswith("SAVEPOINT")]
    with database.read_session() as s:
        [ticket] = s.scalars(select(Ticket)).all()
        stored = s.scalars(select(Message).order_by(Message.uid)).all()
        assert [m.ticket_id for m in stored] == [ticket.id, ticket.id]
        assert all(m.has_html for m in stored)
        assert ticket.ref == 1000 + ticket.id
        # opened (version 2), then the follow-up's audit row (3)
        assert ticket.version == 3
        assert (ticket.in_queue, ticket.queue_due, ticket.priority_rank) == queue_key(ticket)
        [ack] = s.scalars(select(OutboxMail)).all()
        assert (ack.kind, ack.ticket_id, ack.cause_message_id) == ("ack", ticket.id, stored[0].id)
        assert ack.dedupe_key == f"ack:{stored[0].id}"


def test_queueing_the_same_dedupe_key_twice_keeps_one_row(database: Database) -> None:
    mail = ComposedMail(
        message_id="<ack.1@triage.example>",
        mail_from="inbox@example.com",
        rcpt_to=("emma@bakery.example",),
        raw=b"Subject: ack\r\n\r\nthanks\r\n",
        template="ack/default.txt.j2",
    )
    with database.session() as s:
        first = enqueue_row(s, mail, kind="ack", now=NOW, dedupe_key="ack:1")
        second = enqueue_row(s, mail, kind="ack", now=NOW, dedupe_key="ack:1")
    assert first is not None
    assert second is None
    with database.read_session() as s:
        assert s.scalar(select(func.count(OutboxMail.id))) == 1
        row = s.scalars(select(OutboxMail)).one()
        assert (row.id, row.status, row.rcpt_key) == (first, "pending", "emma@bakery.example")
