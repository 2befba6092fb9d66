"""Our acknowledgments paired with an auto-responder that answers everything: no mail loop.

The acknowledgments really go out through the dispatcher to a real aiosmtpd; the
auto-responder answers each mail it receives there, and its answers come back in
through the parser and the acknowledgment decision (RFC 3834 section 2). The
ticket threading of the intake pipeline is left out on purpose: every answer is
treated as a new conversation, the worst case for a loop.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from support.smtp import Received, SmtpServer

from triage.clock import FixedClock
from triage.config import Settings, parse_config
from triage.mail import parse_message
from triage.outbox import compose_ack, decide_ack, enqueue
from triage.services.dispatch import Dispatcher
from triage.smtp import SmtpSender
from triage.store import Database

pytestmark = pytest.mark.smtp

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
ROBOT = "robot@client.example"


def first_mail() -> bytes:
    return (
        f"From: Client Robot <{ROBOT}>\r\nTo: support@example.org\r\n"
        "Subject: Order 1234 status\r\nMessage-ID: <first@client.example>\r\n"
        "Date: Tue, 14 May 2024 11:00:00 +0200\r\n\r\nWhere is my order?\r\n"
    ).encode()


def auto_answer(received: Received, *, rfc3834: bool) -> bytes:
    """What the responder sends back for a mail it got: a new subject every time."""
    original = received.message
    marks = "Auto-Submitted: auto-replied\r\n" if rfc3834 else ""
    return (
        f"From: Client Robot <{ROBOT}>\r\nTo: {original['From']}\r\n"
        f"Subject: Ticket {uuid.uuid4().hex[:8]} opened for your request\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@client.example>\r\n"
        f"In-Reply-To: {original['Message-ID']}\r\n{marks}"
        "Date: Tue, 14 May 2024 11:00:00 +0200\r\n\r\nWe received your mail.\r\n"
    ).encode()


def run_conversation(
    tmp_path: Path, server: SmtpServer, *, rfc3834: bool, rounds: int = 30
) -> tuple[int, list[str], int]:
    """Returns (mail we sent, our decisions, rounds until quiet)."""
    settings: Settings = parse_config(
        {"smtp": {"mode": "folder", "from_address": "Support <support@example.org>"}},
        source="test.toml",
        base_dir=tmp_path,
    )
    db = Database.open(f"sqlite:///{tmp_path / 'loop.db'}")
    clock = FixedClock(T0)
    dispatcher = Dispatcher(
        db, SmtpSender("127.0.0.1", server.port, security="none", timeout=5), clock=clock
    )
    inbox = [first_mail()]
    decisions: list[str] = []
    seen = 0
    try:
        for number in range(rounds):
            if not inbox:
                return seen, decisions, number
            for raw in inbox:
                message = parse_message(raw, received_at=clock.now())
                with db.session() as s:
                    decision = decide_ack(s, message, settings, now=clock.now())
                    decisions.append(decision.reason or "sent")
                    if decision.send:
                        ref = len(decisions)
                        mail = compose_ack(
                            message, ticket_ref=ref, queue="unsorted", due_at=None,
                            settings=settings, now=clock.now(),
                        )  # fmt: skip
                        enqueue(s, mail, kind="ack", now=clock.now(), dedupe_key=f"ack:{ref}")
            asyncio.run(dispatcher.run_once())
            got = server.sink.messages[seen:]
            seen = len(server.sink.messages)
            inbox = [auto_answer(r, rfc3834=rfc3834) for r in got]
            clock.advance(timedelta(minutes=1))
        pytest.fail(f"still exchanging mail after {rounds} rounds: {decisions}")
    finally:
        db.dispose()


def test_an_rfc3834_responder_gets_one_acknowledgment(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    sent, decisions, rounds = run_conversation(tmp_path, smtp_server, rfc3834=True)
    assert sent == 1
    assert decisions == ["sent", "auto_reply"]
    assert rounds == 2
    # what it received is marked so a well-behaved responder would not even answer
    ack = smtp_server.sink.messages[0].message
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["X-Auto-Response-Suppress"] == "All"


def test_a_responder_without_any_marks_gets_one_acknowledgment_too(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """Issue 12.4/12.6: its answer names our acknowledgment in In-Reply-To, so it is not
    answered, whatever its subject and with no RFC 3834 header (the threading is left
    out here on purpose: the acknowledgment decision alone stops the loop)."""
    sent, decisions, rounds = run_conversation(tmp_path, smtp_server, rfc3834=False)
    assert sent == 1
    assert decisions == ["sent", "reply_to_ack"]
    assert rounds == 2
    assert {tuple(r.rcpt_tos) for r in smtp_server.sink.messages} == {(ROBOT,)}
