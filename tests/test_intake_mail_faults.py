"""Issue 12's mail faults through the real protocol: a message APPENDed to the real
Dovecot, fetched by ``poll --once`` (the daemon's pass), routed, threaded, and the
acknowledgment as the real aiosmtpd received it, raw header bytes included."""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.header import decode_header, make_header
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import imap_table
from support.smtp import SmtpServer

from triage.cli.ticket_text import render_ticket
from triage.clock import FixedClock
from triage.config import Settings, parse_config
from triage.daemon import Daemon, PassSummary
from triage.desk import TicketDesk
from triage.mail import parse_message
from triage.store import Database
from triage.store.models import Message, OutboxMail, RoutingDecision, Ticket

pytestmark = [pytest.mark.imap, pytest.mark.smtp]


@dataclass
class Rig:
    """Dovecot inbox -> the daemon's pass -> aiosmtpd, on one SQLite database."""

    dovecot: Dovecot
    account: ImapAccount
    smtp: SmtpServer
    settings: Settings
    db: Database
    daemon: Daemon

    def deliver(self, raw: bytes) -> int:
        """APPEND ``raw`` to the inbox; its UID."""
        return self.dovecot.append(self.account, raw)

    def poll(self) -> PassSummary:
        """One pass: fetch, route, send; fails the test when a folder failed."""
        summary = self.daemon.poll_once()
        for folder in summary.folders:
            assert folder.report is not None, folder.error
        return summary

    def tickets(self) -> list[Ticket]:
        with self.db.read_session() as s:
            rows = list(s.scalars(select(Ticket).order_by(Ticket.id)))
            s.expunge_all()  # detached with their loaded values
            return rows

    def messages(self) -> list[Message]:
        with self.db.read_session() as s:
            rows = list(s.scalars(select(Message).order_by(Message.id)))
            s.expunge_all()  # detached with their loaded values
            return rows

    def decisions(self) -> list[RoutingDecision]:
        with self.db.read_session() as s:
            rows = list(s.scalars(select(RoutingDecision).order_by(RoutingDecision.id)))
            s.expunge_all()  # detached with their loaded values
            return rows

    def outbox(self) -> list[OutboxMail]:
        with self.db.read_session() as s:
            rows = list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))
            s.expunge_all()  # detached with their loaded values
            return rows


@pytest.fixture
def rig(
    dovecot: Dovecot,
    imap_account: ImapAccount,
    smtp_server: SmtpServer,
    sqlite_url: str,
    tmp_path: Path,
) -> Iterator[Rig]:
    settings = parse_config(
        {
            "database": {"url": sqlite_url},
            "imap": imap_table(imap_account, tmp_path),
            "smtp": {
                "mode": "send",
                "host": "127.0.0.1",
                "port": smtp_server.port,
                "security": "none",
                "from_address": "Iroda Ügyfélszolgálat <inbox@example.test>",
                "retry_initial": 1,
            },
            "queues": {"billing": {}, "unsorted": {}},
            "calendar": {
                "timezone": "Europe/Budapest",
                "hours": {
                    d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
                },
            },
        },
        source=str(tmp_path / "t.toml"),
        base_dir=tmp_path,
    )
    db = Database.open(sqlite_url)
    try:
        yield Rig(dovecot, imap_account, smtp_server, settings, db, Daemon(settings, db))
    finally:
        db.dispose()


def mail(
    *,
    subject: str = "Invoice 42 is wrong",
    message_id: str = "<first.42@client.example>",
    sender: str = "Kovacs Odon <odon@client.example>",
    extra: str = "",
    body: str = "Dear team,\r\nthe amount on invoice 42 is wrong.\r\n",
) -> bytes:
    """A client's mail with CRLF line ends; ``extra`` is more header lines (CRLF-ended)."""
    return (
        f"From: {sender}\r\nTo: inbox@example.test\r\nSubject: {subject}\r\n"
        f"Date: Tue, 14 May 2024 09:12:44 +0200\r\nMessage-ID: {message_id}\r\n{extra}"
        f"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n{body}"
    ).encode()


# --- 12.3: a white-space first line -----------------------------------------------------------


def test_a_mail_whose_first_line_is_white_space_becomes_a_real_ticket_and_is_acknowledged(
    rig: Rig,
) -> None:
    rig.deliver(b" \r\n" + mail())
    rig.poll()
    [ticket] = rig.tickets()
    assert ticket.subject == "Invoice 42 is wrong"
    assert ticket.client_addr == "odon@client.example"
    [stored] = rig.messages()
    assert stored.parse_status == "ok", stored.parse_error
    assert stored.body_text == "Dear team,\nthe amount on invoice 42 is wrong."
    [ack] = rig.smtp.sink.wait_for(1)
    assert ack.rcpt_tos == ["odon@client.example"]
    assert ack.message["In-Reply-To"] == "<first.42@client.example>"


# --- 12.2: Message-IDs written without brackets, with comments, in another case --------------


@pytest.mark.parametrize(
    ("in_reply_to", "references"),
    [
        ("{ack_bare}", ""),  # no brackets at all
        ("{ack_upper} (Iroda's message)", ""),  # a comment, and the domain in capitals
        ("", "References: <older@client.example>,\r\n\t{ack_bare_upper_in_brackets}\r\n"),
        ("{first_bare}", ""),  # the client's own first mail, bare
    ],
)
def test_a_reply_with_a_malformed_parent_id_joins_its_ticket_and_gets_no_second_ack(
    rig: Rig, in_reply_to: str, references: str
) -> None:
    rig.deliver(mail())
    rig.poll()
    [ack] = rig.smtp.sink.wait_for(1)
    ack_id = ack.message["Message-ID"].strip()
    left, _, domain = ack_id.strip("<>").rpartition("@")
    values = {
        "ack_bare": f"{left}@{domain}",
        "ack_upper": f"<{left}@{domain.upper()}>",
        "first_bare": "first.42@client.example",
        "ack_bare_upper_in_brackets": f"<{left}@\r\n {domain.upper()}>",
    }
    extra = references.format(**values)
    if in_reply_to:
        extra = f"In-Reply-To: {in_reply_to.format(**values)}\r\n" + extra
    rig.deliver(
        mail(
            subject="the amount again",  # no [#ref]: only the ids can thread it
            message_id="<second.42@client.example>",
            extra=extra,
            body="Any news about invoice 42?\r\n",
        )
    )
    rig.poll()
    tickets = rig.tickets()
    assert len(tickets) == 1
    second = rig.messages()[-1]
    assert second.ticket_id == tickets[0].id
    # a person's follow-up, or (a reply to our ack that dropped the [#ref]) an
    # auto-responder's answer filed as a note: never a second acknowledgment
    assert rig.decisions()[-1].ack in {"follow_up", "auto_reply"}
    assert len(rig.smtp.sink.messages) == 1  # no second acknowledgment with a new number


# --- 12.10: localised reply and forward prefixes ----------------------------------------------


def test_localised_prefix_stacks_leave_the_ticket_subject_and_the_ack_clean(rig: Rig) -> None:
    rig.deliver(mail(subject="[EXTERNAL] VÁ: TOV: AW: Számla kérdés"))
    rig.poll()
    [ticket] = rig.tickets()
    assert ticket.subject == "Számla kérdés"
    [ack] = rig.smtp.sink.wait_for(1)
    assert ack.message["Subject"] == f"Re: [#{ticket.ref}] Számla kérdés"
    # the client answers with her Outlook's prefixes and no threading headers at all
    rig.deliver(
        mail(
            subject=f"Vá: [EXTERNAL] RE: [#{ticket.ref}] Számla kérdés",
            message_id="<second.42@client.example>",
            body="Any news?\r\n",
        )
    )
    rig.poll()
    assert len(rig.tickets()) == 1
    assert rig.messages()[-1].ticket_id == ticket.id
    assert len(rig.smtp.sink.messages) == 1


# --- 12.11: the acknowledgment's header as the SMTP server received it ------------------------


def test_the_ack_subject_and_from_on_the_wire_keep_ascii_words_and_round_trip(rig: Rig) -> None:
    subject = "Számla kérdés – sürgős, kérem mielőbb válaszoljanak, mert holnap lejár a határidő"
    rig.deliver(mail(subject=f"=?utf-8?b?{base64.b64encode(subject.encode()).decode()}?="))
    rig.poll()
    [ticket] = rig.tickets()
    [ack] = rig.smtp.sink.wait_for(1)
    head = ack.content.split(b"\r\n\r\n", 1)[0].decode("ascii")
    raw_subject = re.search(r"^Subject: ([^\r\n]*(?:\r\n[ \t][^\r\n]*)*)", head, re.MULTILINE)
    assert raw_subject is not None
    value = raw_subject.group(1)
    assert value.replace("\r\n", "").startswith(f"Re: [#{ticket.ref}] ")  # not in base64
    for word in ("mert", "holnap", "a"):
        assert f" {word} " in value.replace("\r\n", "")
    for line in head.split("\r\n"):
        assert len(line) <= 78, line
        assert all(len(w) <= 75 for w in re.findall(r"=\?\S+?\?[qb]\?\S*?\?=", line, re.IGNORECASE))
    assert ack.message["Subject"] == f"Re: [#{ticket.ref}] {subject}"
    assert str(make_header(decode_header(value.replace("\r\n", "")))) == ack.message["Subject"]
    assert parse_message(ack.content).subject == ack.message["Subject"]
    sender = parse_message(ack.content).from_
    assert sender is not None
    assert (sender.name, sender.addr) == ("Iroda Ügyfélszolgálat", "inbox@example.test")
    assert re.search(r"^From: Iroda =\?utf-8\?q\?", head, re.MULTILINE)


# --- 12.8: inline images ----------------------------------------------------------------------

PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\x00" * 40).decode()


def test_inline_images_are_stored_and_shown_apart_from_the_attachments(rig: Rig) -> None:
    body = (
        'Content-Type: multipart/mixed; boundary="m"\r\n\r\n'
        '--m\r\nContent-Type: multipart/related; boundary="r"; type="text/html"\r\n\r\n'
        "--r\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<p>Invoice 42 is wrong, see:</p><img src="cid:image001.png@01D9A7B2">'
        '<img src="cid:part2.0609@client.example">\r\n'
        "--r\r\nContent-Type: image/png; name=image001.png\r\n"
        "Content-Disposition: inline; filename=image001.png\r\n"
        f"Content-ID: <image001.png@01D9A7B2>\r\nContent-Transfer-Encoding: base64\r\n\r\n{PNG}\r\n"
        "--r\r\nContent-Type: image/png\r\nContent-ID: <part2.0609@client.example>\r\n"
        f"Content-Transfer-Encoding: base64\r\n\r\n{PNG}\r\n--r--\r\n"
        "--m\r\nContent-Type: application/pdf\r\n"
        "Content-Disposition: attachment; filename=szamla-42.pdf\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQ=\r\n--m--\r\n"
    )
    raw = mail(body="").replace(b"Content-Type: text/plain; charset=utf-8\r\n\r\n", body.encode())
    rig.deliver(raw)
    rig.poll()
    [stored] = rig.messages()
    assert [a["filename"] for a in stored.attachments] == ["szamla-42.pdf"]
    assert [(i["filename"], i["content_id"]) for i in stored.inline_parts] == [
        ("image001.png", "image001.png@01D9A7B2"),
        ("inline-2.png", "part2.0609@client.example"),
    ]
    [ticket] = rig.tickets()
    desk = TicketDesk(rig.db, rig.settings, clock=FixedClock(ticket.opened_at))
    shown = render_ticket(desk.show(ticket.ref or 0), ZoneInfo(rig.settings.calendar.timezone))
    attachments, _, inline = shown.partition("Inline in the text (not attachments):")
    assert "szamla-42.pdf (application/pdf" in attachments.split("Attachments:")[1]
    assert "image001.png" not in attachments
    assert "image001.png (image/png, 48 B)" in inline
    assert "inline-2.png (image/png, 48 B)" in inline
    assert "(no name)" not in shown


# --- 12.5: machine mail gets no ack and no ticket of its own ----------------------------------


def _report(report_type: str, inner: str, ack_id: str) -> bytes:
    return (
        "From: Mail Provider <fbl@isp.example>\r\nTo: inbox@example.test\r\n"
        f"Subject: Report about your mail\r\nMessage-ID: <{report_type}@isp.example>\r\n"
        f"MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type={report_type};"
        ' boundary="b"\r\n\r\n'
        "--b\r\nContent-Type: text/plain\r\n\r\nA report about your mail.\r\n"
        f"--b\r\n{inner}\r\n"
        "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: inbox@example.test\r\nMessage-ID: {ack_id}\r\n\r\n--b--\r\n"
    ).encode()


def test_feedback_reports_read_receipts_and_no_reply_mail_are_filed_not_answered(
    rig: Rig,
) -> None:
    rig.deliver(mail())
    rig.poll()
    [ack] = rig.smtp.sink.wait_for(1)
    ack_id = ack.message["Message-ID"].strip()
    rig.deliver(
        _report(
            "feedback-report",
            "Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\nVersion: 1\r\n",
            ack_id,
        )
    )
    rig.deliver(
        _report(
            "disposition-notification",
            "Content-Type: message/disposition-notification\r\n\r\n"
            f"Original-Message-ID: {ack_id}\r\nDisposition: manual-action/MDN-sent-manually;"
            " displayed\r\n",
            ack_id,
        )
    )
    for n, sender in enumerate(
        ("Shop <noreply-7f3a91@shop.example>", "News <list-bounces+odon=client.example@l.example>")
    ):
        rig.deliver(mail(sender=sender, message_id=f"<n{n}@shop.example>", subject="Your order"))
    rig.poll()
    [ticket] = rig.tickets()  # none of the four opened a ticket
    stored = rig.messages()
    assert [m.kind for m in stored] == [
        "normal",
        "feedback_report",
        "read_receipt",
        "notification",
        "notification",
    ]
    assert [m.ticket_id for m in stored] == [ticket.id, ticket.id, ticket.id, None, None]
    assert [d.ack for d in rig.decisions()] == [
        "",
        "feedback_report",
        "read_receipt",
        "no_reply_sender",
        "no_reply_sender",
    ]
    assert len(rig.smtp.sink.messages) == 1
    assert rig.tickets()[0].status == "new"  # filed as notes: nothing reopened or re-timed


# --- 12.4: an auto-responder's answer to our acknowledgment, without RFC 3834 headers --------


def test_a_responders_answer_to_our_ack_is_a_note_and_a_persons_reply_reopens(rig: Rig) -> None:
    rig.deliver(mail())
    rig.poll()
    [ack] = rig.smtp.sink.wait_for(1)
    ack_id = ack.message["Message-ID"].strip()
    [ticket] = rig.tickets()
    with rig.db.session() as s:  # the team solved it meanwhile
        row = s.get_one(Ticket, ticket.id)
        row.status = "solved"
        row.solved_at = row.opened_at
    rig.deliver(
        mail(
            subject="Ticket 8841 opened for your request",  # its own subject, no [#ref]
            message_id="<robot.8841@client.example>",
            extra=f"In-Reply-To: {ack_id}\r\n",
            body="We received your message and will answer shortly.\r\n",
        )
    )
    rig.poll()
    answer = rig.messages()[-1]
    assert answer.ticket_id == ticket.id
    assert answer.kind == "auto_reply"
    decision = rig.decisions()[-1]
    assert decision.ack == "auto_reply"
    assert any("auto-responder" in line for line in decision.explanation)
    assert rig.tickets()[0].status == "solved"  # not reopened
    assert len(rig.smtp.sink.messages) == 1
    # a person answering the same ack, keeping the subject, ten minutes later: a follow-up
    later = datetime.now(UTC) + timedelta(minutes=10)
    rig.dovecot.append(
        rig.account,
        mail(
            subject=f"Re: [#{ticket.ref}] Invoice 42 is wrong",
            message_id="<person.2@client.example>",
            extra=f"In-Reply-To: {ack_id}\r\n",
            body="One more thing: the VAT number is wrong too.\r\n",
        ),
        msg_time=later,
    )
    rig.poll()
    assert rig.messages()[-1].kind == "normal"
    assert rig.decisions()[-1].ack == "follow_up"
    assert rig.tickets()[0].status != "solved"  # reopened
    assert len(rig.smtp.sink.messages) == 1


# --- 12.9: defects, the signature and a bounce's status shown; the address marked ----------


def test_defects_signature_and_a_bounce_of_our_ack_are_shown_and_the_address_marked(
    rig: Rig,
) -> None:
    rig.deliver(
        mail(
            extra="",
            body=(
                "Dear team,\r\nthe amount on invoice 42 is wrong.\r\n-- \r\nKovacs Odon\r\n"
                "Penzugy\r\n+36 1 234 5678\r\n"
            ),
        ).replace(
            b"Date: Tue, 14 May 2024 09:12:44 +0200", b"Date: Tue, 14 May 2024 27:61:00 +0200"
        )
    )
    rig.poll()
    [ack] = rig.smtp.sink.wait_for(1)
    [stored] = rig.messages()
    assert any(d.startswith("unusable Date header") for d in stored.defects)
    bounce = (
        "From: Mail Delivery System <MAILER-DAEMON@mx.client.example>\r\n"
        "To: inbox@example.test\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        "Message-ID: <dsn.1@mx.client.example>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="d"\r\n\r\n'
        "--d\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--d\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.client.example\r\n"
        "\r\nFinal-Recipient: rfc822; odon@client.example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
        "--d\r\nContent-Type: text/rfc822-headers\r\n\r\n"
        f"From: inbox@example.test\r\nMessage-ID: {ack.message['Message-ID']}\r\n\r\n--d--\r\n"
    )
    rig.deliver(bounce.encode())
    rig.poll()
    [ticket] = rig.tickets()
    assert "undeliverable" in ticket.tags
    desk = TicketDesk(rig.db, rig.settings, clock=FixedClock(ticket.opened_at))
    shown = render_ticket(desk.show(ticket.ref or 0), ZoneInfo(rig.settings.calendar.timezone))
    assert "(defect: unusable Date header: 'Tue, 14 May 2024 27:61:00 +0200')" in shown
    assert "-- Kovacs Odon · Penzugy · +36 1 234 5678  [signature, 3 lines folded]" in shown
    assert "Delivery failed: odon@client.example (5.1.1, RFC 3464)" in shown
    assert "the client's address odon@client.example is undeliverable (5.1.1, RFC 3464)" in shown
    assert "address_undeliverable" in shown
    assert "tags undeliverable" in shown or "undeliverable" in shown.split("Deadlines")[0]
    assert len(rig.smtp.sink.messages) == 1


# --- 12.7: a calendar invitation as the only body -----------------------------------------------


def test_an_invitation_becomes_a_readable_ticket_with_its_ics(rig: Rig) -> None:
    calendar = (
        "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Outlook//EN\r\nMETHOD:REQUEST\r\n"
        "BEGIN:VEVENT\r\nUID:040000008200E00074C5B7101A82E008@client.example\r\n"
        "DTSTAMP:20240514T070000Z\r\nSUMMARY:Éves könyvelési egyeztetés\r\n"
        "DTSTART:20240521T080000Z\r\nDTEND:20240521T090000Z\r\nLOCATION:Iroda\r\n"
        'ORGANIZER;CN="Kovacs Odon":mailto:odon@client.example\r\nEND:VEVENT\r\n'
        "END:VCALENDAR\r\n"
    )
    raw = mail(subject="Meghívó", body=calendar).replace(
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Type: text/calendar; charset=utf-8; method=REQUEST",
    )
    rig.deliver(raw)
    rig.poll()
    [stored] = rig.messages()
    assert "Meeting invitation: Éves könyvelési egyeztetés" in stored.body_text
    assert "When: Tue 2024-05-21 10:00 - 11:00 (Europe/Budapest)" in stored.body_text
    assert "Organizer: Kovacs Odon <odon@client.example>" in stored.body_text
    assert [(a["filename"], a["content_type"]) for a in stored.attachments] == [
        ("request.ics", "text/calendar")
    ]
    assert len(rig.smtp.sink.wait_for(1)) == 1  # a real ticket, acknowledged
