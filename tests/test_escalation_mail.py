"""Escalation and warning mail: owners only for breaches, once per row, digests, warnings."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs
from support.smtp import SmtpServer

from triage.clock import FixedClock
from triage.config import Settings, parse_config
from triage.errors import ConfigError
from triage.escalation import (
    EmailNotifier,
    Notifier,
    NotifyStats,
    Pending,
    history_reason,
    mail_escalations,
    make_notifier,
    notify_escalations,
)
from triage.escalation.mail import digest_period_start
from triage.services.dispatch import Dispatcher
from triage.smtp import SmtpSender
from triage.store import Database
from triage.store.models import Escalation, Message, OutboxMail, Ticket

DUE = datetime(2024, 5, 14, 8, 0, tzinfo=UTC)  # 10:00 in Budapest
NOW = DUE + timedelta(hours=1, minutes=35)
OWNERS = ["Owner One <owner1@example.com>", "owner2@example.com"]


def make_settings(tmp_path: Path, **owners: Any) -> Settings:
    data = {
        "smtp": {"mode": "folder", "from_address": "Office <inbox@example.com>"},
        "team": {
            "name": "Example Office",
            "assistants": {"anna": "anna@example.com", "bela": "bela@example.com"},
        },
        "queues": {
            "unsorted": {},
            "billing": {"assistants": ["anna"]},
            "records": {"assistants": ["anna", "bela"]},
        },
        "calendar": {"timezone": "Europe/Budapest"},
        "owners": {"addresses": OWNERS, **owners},
    }
    return parse_config(data, source="test.toml", base_dir=tmp_path)


BODY = (
    "Tisztelt Ügyfélszolgálat!\n\n\nA májusi számlán szereplő összeg hibás.\nKérem, javítsák.\n"
    + ("további sor\n" * 20)
)


def add_ticket(
    s: Any, ref: int, *, queue: str = "billing", assignee: str | None = None, status: str = "open"
) -> Ticket:
    ticket = Ticket(
        ref=ref,
        queue=queue,
        priority="high",
        status=status,
        subject="Számla kérdés – sürgős",
        client_addr="odon.kovacs@example.com",
        client_name="Kovács Ödön",
        assignee=assignee,
        opened_at=DUE - timedelta(hours=2),
    )
    s.add(ticket)
    s.flush()
    s.add(
        Message(
            source="imap",
            direction="in",
            message_id=f"<m{ref}@mail.example.com>",
            raw_sha256="0" * 64,
            raw=b"x",
            raw_size=1,
            received_at=DUE - timedelta(hours=2),
            from_addr="odon.kovacs@example.com",
            subject=ticket.subject,
            body_text=BODY,
            ticket_id=ticket.id,
        )
    )
    return ticket


def add_escalation(
    s: Any,
    ticket: Ticket,
    kind: str,
    *,
    due: datetime | None = DUE,
    reason: str = "",
    created: datetime = NOW,
) -> Escalation:
    esc = Escalation(
        ticket_id=ticket.id, kind=kind, cycle=0, reason=reason, due_at=due, created_at=created
    )
    s.add(esc)
    s.flush()
    return esc


def outbox(db: Database) -> list[OutboxMail]:
    with db.session() as s:
        return list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))


def escalations(db: Database) -> list[Escalation]:
    with db.session() as s:
        return list(s.scalars(select(Escalation).order_by(Escalation.id)))


def parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def text(raw: bytes) -> str:
    body = parsed(raw).get_body()
    assert body is not None
    return "\n".join(body.get_content().splitlines())


def test_a_breach_goes_to_the_owners_only_with_what_and_how_much(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    with database.session() as s:
        ticket = add_ticket(s, 1042, assignee="anna")
        add_escalation(s, ticket, "first_response")
        stats = mail_escalations(s, settings, NOW)
    assert (stats.mailed, stats.digested, stats.skipped) == (1, 0, 0)
    [row] = outbox(database)
    assert row.kind == "escalation"
    assert row.rcpt_to == ["owner1@example.com", "owner2@example.com"]
    assert row.dedupe_key == f"escalation:{escalations(database)[0].id}"
    assert row.ticket_id is not None
    msg = parsed(row.raw)
    assert msg["To"] == "Owner One <owner1@example.com>, owner2@example.com"
    assert "anna@example.com" not in row.raw.decode()
    assert msg["Subject"] == (
        "[#1042] SLA breach: first response overdue by 1 h 35 min - Számla kérdés – sürgős"
    )
    assert msg["Auto-Submitted"] == "auto-generated"
    body = text(row.raw)
    assert "breached its first response target" in body
    assert "due Tuesday 14 May 2024, 10:00 CEST and is 1 h 35 min overdue (working hours)" in body
    assert "Queue:     billing" in body
    assert "Assignee:  anna" in body
    assert "Client:    Kovács Ödön <odon.kovacs@example.com>" in body
    assert "> A májusi számlán szereplő összeg hibás." in body
    assert body.count("> ") <= 8  # the first lines only
    assert escalations(database)[0].notified_at == NOW


def test_one_mail_per_escalation_and_never_a_repeat(database: Database, tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    with database.session() as s:
        a, b = add_ticket(s, 1), add_ticket(s, 2)
        add_escalation(s, a, "first_response")
        add_escalation(s, a, "resolution", due=DUE + timedelta(minutes=30))
        add_escalation(s, b, "rule", due=None, reason="VIP client: bigclient.example")
        assert mail_escalations(s, settings, NOW).mailed == 3
    for later in (NOW, NOW + timedelta(hours=1), NOW + timedelta(days=1)):
        with database.session() as s:
            assert mail_escalations(s, settings, later).mailed == 0
    rows = outbox(database)
    assert len(rows) == 3
    assert all(e.notified_at == NOW for e in escalations(database))
    rule = parsed(rows[2].raw)
    assert rule["Subject"] == "[#2] Escalated - Számla kérdés – sürgős"
    assert "escalated to you: VIP client: bigclient.example" in text(rows[2].raw)
    assert "overdue by 1 h 5 min" in parsed(rows[1].raw)["Subject"]


def test_overdue_time_counts_working_hours_only(database: Database, tmp_path: Path) -> None:
    """A deadline missed late on Friday is 1 h 30 min overdue at 9:30 on Monday, not 2 days.

    Default hours 09:00-17:00 Monday to Friday in Europe/Budapest: Friday 16:00-17:00
    plus Monday 09:00-09:30.
    """
    settings = make_settings(tmp_path)
    due = datetime(2024, 5, 10, 14, 0, tzinfo=UTC)  # Friday 16:00 CEST
    monday = datetime(2024, 5, 13, 7, 30, tzinfo=UTC)  # Monday 09:30 CEST
    with database.session() as s:
        ticket = add_ticket(s, 7)
        add_escalation(s, ticket, "first_response", due=due, created=monday)
        assert mail_escalations(s, settings, monday).mailed == 1
    [row] = outbox(database)
    assert parsed(row.raw)["Subject"] == (
        "[#7] SLA breach: first response overdue by 1 h 30 min - Számla kérdés – sürgős"
    )
    assert "and is 1 h 30 min overdue (working hours)" in text(row.raw)


def test_a_new_escalation_after_a_reopen_is_mailed_again(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    with database.session() as s:
        ticket = add_ticket(s, 5)
        add_escalation(s, ticket, "next_response")
        mail_escalations(s, settings, NOW)
    with database.session() as s:
        ticket = s.scalars(select(Ticket)).one()
        s.add(Escalation(ticket_id=ticket.id, kind="next_response", cycle=1, due_at=NOW))
        s.flush()
        assert mail_escalations(s, settings, NOW + timedelta(hours=3)).mailed == 1
    assert len(outbox(database)) == 2


def test_warnings_go_to_the_assignee_else_the_queue_assistants(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    soon = NOW + timedelta(minutes=40)
    with database.session() as s:
        add_escalation(s, add_ticket(s, 10, assignee="bela"), "warning_first_response", due=soon)
        add_escalation(s, add_ticket(s, 11, queue="records"), "warning_resolution", due=soon)
        add_escalation(s, add_ticket(s, 12, queue="unsorted"), "warning_first_response", due=soon)
        add_escalation(s, add_ticket(s, 13, status="solved"), "warning_next_response", due=soon)
        with capture_logs() as logs:
            stats = mail_escalations(s, settings, NOW)
    assert (stats.mailed, stats.skipped) == (2, 2)
    rows = outbox(database)
    assert [(r.kind, r.rcpt_to) for r in rows] == [
        ("warning", ["bela@example.com"]),
        ("warning", ["anna@example.com", "bela@example.com"]),
    ]
    assert all("owner" not in r.raw.decode() for r in rows)
    assert parsed(rows[0].raw)["Subject"] == (
        "[#10] First response due in 40 min - Számla kérdés – sürgős"
    )
    assert "due Tuesday 14 May 2024, 12:15 CEST, in 40 min" in text(rows[0].raw)
    assert all(e.notified_at == NOW for e in escalations(database))
    skipped = [e for e in logs if e["event"] == "escalation_not_mailed"]
    assert {t for e in skipped for t in e["tickets"]} == {12, 13}
    assert sum(e["count"] for e in skipped) == 2


def test_without_owners_a_breach_is_marked_and_logged(database: Database, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, addresses=[])
    with database.session() as s:
        add_escalation(s, add_ticket(s, 20), "first_response")
        with capture_logs() as logs:
            stats = mail_escalations(s, settings, NOW)
    assert stats.skipped == 1
    assert outbox(database) == []
    assert escalations(database)[0].notified_at == NOW
    assert [e["reason"] for e in logs if e["event"] == "escalation_not_mailed"] == [
        "no [owners] addresses"
    ]


def test_hourly_digest_batches_the_escalations_of_the_past_hour(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, digest="hourly")
    local_ten = datetime(2024, 5, 14, 8, 0, tzinfo=UTC)  # 10:00 Budapest
    with database.session() as s:
        a, b, c = add_ticket(s, 31), add_ticket(s, 32), add_ticket(s, 33)
        add_escalation(s, a, "first_response", created=local_ten - timedelta(minutes=50))
        add_escalation(
            s, b, "rule", due=None, reason="legal words", created=local_ten - timedelta(minutes=5)
        )
        add_escalation(s, c, "resolution", created=local_ten + timedelta(seconds=30))
        add_escalation(
            s, c, "warning_resolution", due=NOW, created=local_ten - timedelta(minutes=20)
        )
        # 09:55: the 09:00-10:00 period has not ended; the warning goes at once.
        early = mail_escalations(s, settings, local_ten - timedelta(minutes=5))
    assert (early.mailed, early.digested) == (1, 0)
    assert [r.kind for r in outbox(database)] == ["warning"]
    with database.session() as s:
        due = mail_escalations(s, settings, local_ten + timedelta(minutes=1))
    assert due.digested == 2
    rows = outbox(database)
    assert [r.kind for r in rows] == ["warning", "digest"]
    digest = rows[1]
    assert digest.rcpt_to == ["owner1@example.com", "owner2@example.com"]
    assert (
        parsed(digest.raw)["Subject"] == "Escalations: 2 tickets (Tuesday 14 May 2024, 10:00 CEST)"
    )
    body = text(digest.raw)
    assert "1. [#31] first response overdue by" in body
    assert "2. [#32] escalated: legal words" in body
    assert "#33" not in body
    notified = {
        e.ticket_id: e.notified_at for e in escalations(database) if e.kind != "warning_resolution"
    }
    assert sorted(v is not None for v in notified.values()) == [False, True, True]
    with database.session() as s:
        assert mail_escalations(s, settings, local_ten + timedelta(minutes=30)).digested == 0
    with database.session() as s:
        assert mail_escalations(s, settings, local_ten + timedelta(hours=1)).digested == 1
    assert len(outbox(database)) == 3  # fmt: skip


def test_daily_digest_period_starts_at_digest_time_local(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, digest="daily", digest_time="08:00")
    # 07:30 Budapest on 14 May -> the period began 08:00 on 13 May (06:00 UTC).
    assert digest_period_start(datetime(2024, 5, 14, 5, 30, tzinfo=UTC), settings) == datetime(
        2024, 5, 13, 6, 0, tzinfo=UTC
    )
    assert digest_period_start(datetime(2024, 5, 14, 6, 0, tzinfo=UTC), settings) == datetime(
        2024, 5, 14, 6, 0, tzinfo=UTC
    )
    winter = digest_period_start(datetime(2024, 1, 10, 12, 0, tzinfo=UTC), settings)
    assert winter == datetime(2024, 1, 10, 7, 0, tzinfo=UTC)


def test_hungarian_escalation_mail(database: Database, tmp_path: Path) -> None:
    settings = make_settings(tmp_path, language="hu")
    with database.session() as s:
        add_escalation(s, add_ticket(s, 1042), "first_response")
        mail_escalations(s, settings, NOW)
    [row] = outbox(database)
    assert parsed(row.raw)["Subject"] == (
        "[#1042] SLA-túllépés: első válasz, 1 óra 35 perc késés - Számla kérdés – sürgős"
    )
    expected = "Határidő: 2024. május 14. (kedd) 10:00, késés: 1 óra 35 perc (munkaidőben)."
    assert expected in text(row.raw)


class Boom(Exception):
    pass


def test_nothing_is_marked_when_the_callers_transaction_rolls_back(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path)
    with database.session() as s:
        add_escalation(s, add_ticket(s, 50), "first_response")
    with pytest.raises(Boom), database.session() as s:
        mail_escalations(s, settings, NOW)
        raise Boom
    assert outbox(database) == []
    assert escalations(database)[0].notified_at is None
    with database.session() as s:
        assert mail_escalations(s, settings, NOW).mailed == 1


@pytest.mark.smtp
def test_escalation_mail_reaches_the_owners_over_smtp(
    sqlite_url: str, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    settings = make_settings(tmp_path)
    db = Database.open(sqlite_url)
    try:
        with db.session() as s:
            add_escalation(s, add_ticket(s, 77, assignee="anna"), "first_response")
            mail_escalations(s, settings, NOW)
        sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
        assert asyncio.run(Dispatcher(db, sender, clock=FixedClock(NOW)).run_once()).sent == 1
    finally:
        db.dispose()
    [got] = smtp_server.sink.wait_for(1)
    assert got.rcpt_tos == ["owner1@example.com", "owner2@example.com"]
    assert got.mail_from == "inbox@example.com"


class ChatNotifier:
    """A second channel as the Notifier seam promises: one class (records what it told)."""

    name = "chat"

    def __init__(self) -> None:
        self.told: list[tuple[int, str, bool]] = []

    def notify(self, session: Any, pending: Sequence[Pending], now: datetime) -> NotifyStats:  # noqa: ARG002 - the protocol's signature
        for item in pending:
            self.told.append((item.ticket.ref or 0, item.escalation.kind, item.is_warning))
            item.escalation.notified_at = now
        return NotifyStats(mailed=len(pending))


def test_a_notifier_is_handed_each_untold_escalation_once(
    database: Database, tmp_path: Path
) -> None:
    """Issue 14.3: delivery sits behind the Notifier protocol; e-mail is its first class."""
    settings = make_settings(tmp_path)
    chat = ChatNotifier()
    with database.session() as s:
        add_escalation(s, add_ticket(s, 1042), "first_response")
        add_escalation(s, add_ticket(s, 1043, assignee="bela"), "warning_first_response")
        assert notify_escalations(s, chat, NOW).mailed == 2
        assert notify_escalations(s, chat, NOW).mailed == 0  # told once
    assert chat.told == [(1042, "first_response", False), (1043, "warning_first_response", True)]
    assert outbox(database) == []  # the e-mail notifier was not involved
    email: Notifier = make_notifier(settings)
    assert isinstance(email, EmailNotifier)
    assert email.name == "email"
    with pytest.raises(ConfigError, match="no escalation notifier called 'pager'"):
        make_notifier(settings, "pager")


def test_history_is_not_escalated_by_one_rule() -> None:
    """One rule for rule escalations (pipeline) and SLA breaches (SLA watch)."""
    seen = NOW
    assert history_reason(seen_at=seen, imported=True) == "imported history"
    week_old = seen - timedelta(days=7)
    assert history_reason(seen_at=seen, received_at=week_old, max_age=86400) == (
        "older than max_age when first seen"
    )
    assert history_reason(seen_at=seen, received_at=week_old, max_age=0) == ""
    assert history_reason(seen_at=seen, due_at=seen - timedelta(minutes=1)) == (
        "past due before triage saw the ticket"
    )
    assert history_reason(seen_at=seen, due_at=seen + timedelta(minutes=1)) == ""
    assert history_reason(seen_at=seen, received_at=seen - timedelta(hours=1), max_age=86400) == ""
