"""A mail at and over the size limit: stored whole, read in part, routed (issue 13.9).

The parser reads at most :data:`~triage.mail.body.MAX_TEXT_BYTES` of a text part
(the body text keeps 1,000,000 characters anyway) and no more than
``imap.max_message_size`` of the message, without copying the rest: the raw bytes
stored are the whole message, byte for byte. The memory this saves is measured by
``benchmarks/bigmail_bench.py``, not here.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from triage.assembly import assemble
from triage.clock import FixedClock
from triage.config import Settings, load_config
from triage.imap.responses import FetchedMessage
from triage.imap.watch import StoreOutcome, SyncPlan
from triage.mail import parse_message
from triage.mail.body import MAX_TEXT_BYTES
from triage.mail.parse import MAX_BODY_TEXT
from triage.services.pipeline import ModelHolder
from triage.store import Database
from triage.store.models import Message, RoutingDecision, Ticket

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
LINE = "Kérem a számla javítását, az összeg hibás. invoice payment\r\n"


def big_mail(size: int, *, last: str = "THE LAST LINE") -> bytes:
    """A UTF-8 text mail of about ``size`` bytes about an invoice; ``last`` ends it."""
    head = (
        "From: Client <client@example.com>\r\nTo: inbox@example.test\r\n"
        "Message-ID: <big@example.com>\r\nDate: Tue, 24 Nov 2026 09:55:00 +0000\r\n"
        "Subject: Invoice 2026112 question\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
    )
    body = LINE * (size // len(LINE.encode()))
    return (head + body + last + "\r\n").encode()


def test_a_text_part_over_the_read_limit_is_cut_at_a_line_without_a_charset_guess() -> None:
    raw = big_mail(MAX_TEXT_BYTES + 500_000)
    parsed = parse_message(raw, received_at=NOW)
    assert parsed.parse_status == "ok"
    assert parsed.size == len(raw)
    assert not parsed.charset_fallback  # no UTF-8 sequence was split
    assert len(parsed.body_text) == MAX_BODY_TEXT
    assert parsed.body_text.startswith("Kérem a számla javítását")
    assert "THE LAST LINE" not in parsed.body_text
    assert any("text/plain part over 4,000,000 bytes" in d for d in parsed.defects)


def test_a_text_part_under_the_read_limit_is_read_whole() -> None:
    raw = big_mail(200_000)
    parsed = parse_message(raw, received_at=NOW)
    assert parsed.body_text.endswith("THE LAST LINE")
    assert not any("bytes: the first" in d for d in parsed.defects)


@pytest.fixture
def settings(tmp_path: Path, db_url: str) -> Settings:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///triage.db"', f'url = "{db_url}"')
    text = text.replace('mode = "send"', 'mode = "folder"')
    path = tmp_path / "triage.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path)


def test_a_mail_over_the_size_limit_is_stored_whole_and_routed(
    database: Database, settings: Settings
) -> None:
    raw = big_mail(30_000_000)
    assert len(raw) > settings.imap.max_message_size
    parts = assemble(
        settings, database, clock=FixedClock(NOW), models=ModelHolder(queue=None), poll=False
    )
    plan = SyncPlan(folder="INBOX", uidvalidity=7, first_uid=1)
    outcome = parts.intake.store(plan, FetchedMessage(1, raw, NOW, len(raw)))
    assert outcome is StoreOutcome.STORED
    with database.session() as s:
        row = s.scalars(select(Message)).one()
        assert row.raw_size == len(raw)
        assert row.raw_sha256 == hashlib.sha256(raw).hexdigest()
        assert row.raw == raw  # whole, byte for byte
        assert row.parse_status == "truncated_size"
        assert len(row.body_text) <= MAX_BODY_TEXT
        assert row.body_text.startswith("Kérem a számla javítását")
        ticket = s.scalars(select(Ticket)).one()
        assert row.ticket_id == ticket.id
        assert ticket.queue == "billing"  # the shipped 'invoice' rule read the subject
        decision = s.scalars(select(RoutingDecision)).one()
        assert decision.rules_matched[0] == "invoice"
