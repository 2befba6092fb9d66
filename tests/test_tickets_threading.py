"""Threading: ticket references in subjects, and which ticket an incoming mail joins."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from support.tickets import local, make_policy, store_message

from triage.domain import Address, DeliveryReport, InboundMessage, MessageKind
from triage.errors import NotFoundError
from triage.refs import (
    extract_refs,
    format_ref,
    normalize_subject,
    parse_ref,
    ref_for,
    subject_with_ref,
)
from triage.store import Database
from triage.store.models import OutboxMail, Ticket
from triage.tickets import find_ticket, find_ticket_for, open_ticket
from triage.tickets.lifecycle import set_status

NOW = datetime(2026, 3, 9, 9, 0, tzinfo=UTC)


# --- pure ------------------------------------------------------------------------------


def test_refs_are_found_in_subjects() -> None:
    assert extract_refs("Re: [#1042] Számla") == (1042,)
    assert extract_refs("[#1042] and [#1043] and again [#1042]") == (1042, 1043)
    assert extract_refs("Order #1042 without brackets") == ()
    assert extract_refs("Automatikus válasz: [#4711] Számla kérdés – sürgős") == (4711,)


@pytest.mark.parametrize(
    ("subject", "expected"),
    [
        ("Re: Számla", "Számla"),
        ("RE: re: Fwd: Számla", "Számla"),
        ("Válasz: Számla", "Számla"),
        ("VS: Válasz: Számla", "Számla"),
        ("Továbbítás: Számla", "Számla"),
        ("AW: WG: Rechnung", "Rechnung"),
        ("Re[2]: Számla", "Számla"),
        ("Re: [#1042] Számla", "Számla"),
        ("Fw:  [#1042]   Számla  kérdés", "Számla kérdés"),
        ("Remarks on the invoice", "Remarks on the invoice"),
        ("Resume: next steps", "Resume: next steps"),
        # issue 12.10: localised prefixes, stacks, gateway tags
        ("VÁ: Számla", "Számla"),  # Hungarian Outlook
        ("Vá: TOV: Számla", "Számla"),
        ("Továbbítva: Számla", "Számla"),
        ("WG: AW: Rechnung", "Rechnung"),  # German
        ("Antwort: Rechnung", "Rechnung"),
        ("SV: VS: VB: Faktura", "Faktura"),  # Swedish, Danish, Norwegian, Finnish
        ("Antw: Doorst: Factuur", "Factuur"),  # Dutch
        ("RE : TR : facture", "facture"),  # French spacing
        ("RV: RES: ENC: fatura", "fatura"),  # Spanish, Portuguese
        ("Odp: PD: faktura", "faktura"),  # Polish
        ("ΑΠ: ΣΧΕΤ: τιμολόγιο", "τιμολόγιο"),  # Greek
        ("Отв: Пересл: счёт", "счёт"),  # Russian
        ("回复: 转发: 发票", "发票"),  # Chinese
        ("RE: AW: Fwd: invoice", "invoice"),  # a mixed stack
        ("Re:Re:invoice", "invoice"),  # no spaces
        ("Re^2: invoice", "invoice"),
        ("Re：invoice", "invoice"),  # full-width colon
        ("[EXTERNAL] RE: AW: Fwd: [#1042] Számla", "Számla"),  # gateway tag in front
        ("RE: [EXTERNAL] VÁ: Számla", "Számla"),  # ... or inside the stack
        ("*EXTERNAL* Re: Számla", "Számla"),
        ("[Caution: External Email] RE: Számla", "Számla"),
        ("[Külső] Re: Számla", "Számla"),
        ("[hirlevel] Re: Újdonságok", "[hirlevel] Újdonságok"),  # a list tag is kept
        ("Re: [URGENT] invoice", "[URGENT] invoice"),  # so is the client's own tag
        ("Trip: Paris", "Trip: Paris"),
        ("Travel plans", "Travel plans"),
        ("Svar på fråga", "Svar på fråga"),
    ],
)
def test_reply_and_forward_prefixes_are_normalized(subject: str, expected: str) -> None:
    assert normalize_subject(subject) == expected


def test_ref_formats() -> None:
    assert ref_for(42) == 1042
    assert format_ref(1042) == "#1042"
    assert parse_ref("#1042") == parse_ref("1042") == parse_ref(" [#1042] ") == 1042
    with pytest.raises(NotFoundError, match="not a ticket reference"):
        parse_ref("abc")
    # answering an answer does not pile up prefixes or references
    once = subject_with_ref("Számla", 1042)
    assert once == "Re: [#1042] Számla"
    assert subject_with_ref(once, 1042) == once
    assert subject_with_ref("Re: [#999] Számla", 1042) == "Re: [#1042] Számla"
    # a localised stack with a gateway tag: the reference still found, and written once
    stacked = "[EXTERNAL] VÁ: AW: Re: [#1042] Számla"
    assert extract_refs(stacked) == (1042,)
    assert subject_with_ref(stacked, 1042) == "Re: [#1042] Számla"


# --- database --------------------------------------------------------------------------


def _open(db: Database, message_id: str, subject: str = "Invoice question") -> int:
    policy = make_policy()
    with db.session() as s:
        m = store_message(
            s, message_id=message_id, subject=subject, received_at=local(2026, 3, 9, 9)
        )
        t = open_ticket(
            s, m, policy=policy, queue="billing", priority="normal", decided_by="rule", now=NOW
        )
        return t.id


def test_reply_joins_by_in_reply_to(database: Database) -> None:
    ticket_id = _open(database, "<a1@client.example>")
    with database.session() as s:
        match = find_ticket(s, in_reply_to="<a1@client.example>", subject="Something else")
        assert match is not None
        assert match.ticket.id == ticket_id
        assert match.via == "in_reply_to"
        # without angle brackets too
        again = find_ticket(s, in_reply_to="a1@client.example")
        assert again is not None
        assert again.ticket.id == ticket_id


def test_reply_joins_by_references_most_recent_first(database: Database) -> None:
    first = _open(database, "<a1@client.example>")
    second = _open(database, "<b1@client.example>", subject="Another matter")
    with database.session() as s:
        match = find_ticket(
            s, references=["<unknown@x>", "<a1@client.example>", "<b1@client.example>"]
        )
        assert match is not None
        assert match.ticket.id == second
        assert match.via == "references"
        only_first = find_ticket(s, references=["<a1@client.example>", "<gone@x>"])
        assert only_first is not None
        assert only_first.ticket.id == first


def test_reply_to_our_acknowledgment_joins_by_the_outbox_message_id(database: Database) -> None:
    ticket_id = _open(database, "<a1@client.example>")
    with database.session() as s:
        s.add(
            OutboxMail(
                kind="ack",
                ticket_id=ticket_id,
                message_id="<ack1@office.example>",
                mail_from="inbox@office.example",
                rcpt_to=["client@example.com"],
                raw=b"x",
            )
        )
    with database.session() as s:
        match = find_ticket(s, in_reply_to="<ack1@office.example>")
        assert match is not None
        assert match.ticket.id == ticket_id


def test_subject_reference_when_headers_are_missing(database: Database) -> None:
    ticket_id = _open(database, "<a1@client.example>")
    with database.session() as s:
        ref = s.get(Ticket, ticket_id).ref
        match = find_ticket(s, subject=f"Re: [#{ref}] Invoice question")
        assert match is not None
        assert match.ticket.id == ticket_id
        assert match.via == "subject_ref"
        assert find_ticket(s, subject="Re: [#99999] Invoice question") is None


def test_headers_win_over_the_subject_reference(database: Database) -> None:
    first = _open(database, "<a1@client.example>")
    second = _open(database, "<b1@client.example>")
    with database.session() as s:
        ref_second = s.get(Ticket, second).ref
        match = find_ticket(s, in_reply_to="<a1@client.example>", subject=f"[#{ref_second}]")
        assert match is not None
        assert match.ticket.id == first


def test_new_subject_from_the_same_sender_is_a_new_ticket(database: Database) -> None:
    _open(database, "<a1@client.example>")
    with database.session() as s:
        assert find_ticket(s, subject="Invoice question") is None
        assert find_ticket(s, subject="A new question", in_reply_to="<nope@x>") is None


def test_closed_tickets_are_not_joined_unless_asked(database: Database) -> None:
    ticket_id = _open(database, "<a1@client.example>")
    policy = make_policy()
    with database.session() as s:
        set_status(s, s.get(Ticket, ticket_id), "closed", actor="anna", policy=policy, now=NOW)
    with database.session() as s:
        assert find_ticket(s, in_reply_to="<a1@client.example>") is None
        match = find_ticket(s, in_reply_to="<a1@client.example>", include_closed=True)
        assert match is not None


def test_parsed_message_and_bounce_report(database: Database) -> None:
    ticket_id = _open(database, "<a1@client.example>")
    with database.session() as s:
        s.add(
            OutboxMail(
                kind="ack",
                ticket_id=ticket_id,
                message_id="<ack1@office.example>",
                mail_from="inbox@office.example",
                raw=b"x",
            )
        )
    reply = InboundMessage(
        message_id="<a2@client.example>",
        subject="Re: Invoice question",
        received_at=NOW,
        from_=Address("Client", "client@example.com"),
        in_reply_to="",
        references=("<a1@client.example>",),
    )
    bounce = InboundMessage(
        message_id="<dsn@mx.example>",
        subject="Undelivered Mail Returned to Sender",
        received_at=NOW,
        kind=MessageKind.BOUNCE,
        delivery_report=DeliveryReport(
            failed_recipients=("client@example.com",),
            status="5.1.1",
            original_message_id="<ack1@office.example>",
        ),
    )
    with database.session() as s:
        by_refs = find_ticket_for(s, reply)
        assert by_refs is not None
        assert by_refs.ticket.id == ticket_id
        by_report = find_ticket_for(s, bounce)
        assert by_report is not None
        assert by_report.ticket.id == ticket_id
        assert by_report.via == "delivery_report"
