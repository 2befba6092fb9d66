"""A reply through triage: one outbox row with threading headers, and the clock stops."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy as email_policy

import pytest
from sqlalchemy import select
from support.tickets import local, make_policy, store_message

from triage.errors import UserError
from triage.store import Database
from triage.store.models import Message, OutboxMail, TicketEvent
from triage.tickets import find_ticket, get_ticket, open_ticket, queue_reply
from triage.tickets.compose import compose_reply

POLICY = make_policy()
SETTINGS = POLICY.settings
NOW = datetime(2026, 3, 9, 10, tzinfo=UTC)


def _ticket(db: Database, subject: str = "Számla kérdés") -> int:
    with db.session() as s:
        first = store_message(
            s,
            message_id="<c1@client.example>",
            received_at=local(2026, 3, 9, 9),
            subject=subject,
            reply_to=("billing@client.example",),
        )
        t = open_ticket(
            s, first, policy=POLICY, queue="billing", priority="normal", decided_by="rule", now=NOW
        )
        second = store_message(
            s,
            message_id="<c2@client.example>",
            received_at=local(2026, 3, 9, 9, 30),
            subject=f"Re: {subject}",
            in_reply_to="<c1@client.example>",
            references=("<c1@client.example>",),
            reply_to=("billing@client.example",),
        )
        second.ticket_id = t.id
        return t.ref or 0


def test_reply_writes_exactly_one_outbox_row_with_threading_headers(database: Database) -> None:
    ref = _ticket(database)
    with database.session() as s:
        row = queue_reply(
            s,
            get_ticket(s, ref),
            "Köszönjük, a számlát javítjuk.\n",
            actor="anna",
            settings=SETTINGS,
            policy=POLICY,
            now=NOW,
        )
        row_id = row.id
    with database.session() as s:
        (row,) = s.scalars(select(OutboxMail)).all()
        assert row.id == row_id
        assert (row.kind, row.status) == ("reply", "pending")
        assert row.mail_from == "inbox@office.example"
        assert row.rcpt_to == ["billing@client.example"]  # the client's Reply-To
        assert row.rcpt_key == "billing@client.example"
        assert row.dedupe_key == f"reply:{row.message_id}"
        assert row.message_id.endswith("@office.example>")
        mail = email.message_from_bytes(row.raw, policy=email_policy.default)
        assert mail["From"] == "Example Office <inbox@office.example>"
        assert mail["To"] == "billing@client.example"
        assert mail["Subject"] == f"Re: [#{ref}] Számla kérdés"
        assert mail["Message-ID"] == row.message_id
        assert mail["In-Reply-To"] == "<c2@client.example>"
        assert mail["References"] == "<c1@client.example> <c2@client.example>"
        assert mail["Auto-Submitted"] is None  # a person wrote it
        assert mail["Content-Transfer-Encoding"] == "quoted-printable"
        assert mail.get_content().replace("\r\n", "\n") == "Köszönjük, a számlát javítjuk.\n"
        assert b"\r\n" in row.raw
        ticket = get_ticket(s, ref)
        assert ticket.first_response_at == NOW
        assert ticket.awaiting_since is None
        replied = s.scalars(select(TicketEvent).where(TicketEvent.action == "replied")).one()
        assert replied.actor == "anna"
        assert replied.detail["message_id"] == row.message_id
        # the sent mail is stored, so the client's answer to it threads back
        out = s.scalars(select(Message).where(Message.direction == "out")).one()
        assert (out.source, out.ticket_id, out.message_id) == ("outbox", ticket.id, row.message_id)
        match = find_ticket(s, in_reply_to=row.message_id)
        assert match is not None
        assert match.ticket.id == ticket.id


def test_reply_rolls_back_with_its_transaction(database: Database) -> None:
    ref = _ticket(database)

    class Stop(Exception):
        pass

    with pytest.raises(Stop), database.session() as s:
        queue_reply(
            s, get_ticket(s, ref), "text", actor="anna", settings=SETTINGS, policy=POLICY, now=NOW
        )
        raise Stop
    with database.session() as s:
        assert s.scalars(select(OutboxMail)).all() == []
        assert get_ticket(s, ref).first_response_at is None


def test_empty_reply_and_missing_smtp_are_user_errors(database: Database) -> None:
    ref = _ticket(database)
    no_smtp = SETTINGS.model_copy(update={"smtp": None})
    with database.session() as s:
        ticket = get_ticket(s, ref)
        with pytest.raises(UserError, match="empty"):
            queue_reply(s, ticket, "  \n", actor="a", settings=SETTINGS, policy=POLICY, now=NOW)
        with pytest.raises(UserError, match=r"\[smtp\]"):
            queue_reply(s, ticket, "Hi", actor="a", settings=no_smtp, policy=POLICY, now=NOW)


def test_composed_subject_cannot_inject_headers() -> None:
    from triage.domain import Address  # noqa: PLC0415

    mail = compose_reply(
        from_address="Office <inbox@office.example>",
        to=Address("Évi", "evi@client.example"),
        subject="Jelszó visszaállítás\r\nBcc: leak@example.net",
        ref=1042,
        body="Szia!",
        in_reply_to="<c1@client.example>",
        references=(),
        message_id="<r1@office.example>",
        date=NOW,
    )
    raw = mail
    assert b"\r\nBcc:" not in raw
    parsed = email.message_from_bytes(raw, policy=email_policy.default)
    assert parsed["Subject"] == "Re: [#1042] Jelszó visszaállítás Bcc: leak@example.net"
    assert parsed["Bcc"] is None
    assert parsed["To"] == "Évi <evi@client.example>"
