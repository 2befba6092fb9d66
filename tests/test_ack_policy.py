"""The acknowledgment decision: every reason, the shared cases, the per-sender limit, enqueue."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from triage.config import Settings, parse_config
from triage.domain import Address, DeliveryReport, InboundMessage, MessageKind
from triage.mail import parse_message
from triage.outbox import (
    AckReason,
    ComposedMail,
    compose_ack,
    decide_ack,
    enqueue,
    plan_ack,
    recent_ack_count,
)
from triage.store import Database
from triage.store.models import OutboxMail

NOW = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)


def make_settings(tmp_path: Path, smtp: bool = True, **extra: Any) -> Settings:
    data: dict[str, Any] = {
        "team": {
            "addresses": ["Office <Office@Example.com>"],
            "assistants": {"anna": "anna@example.com"},
        },
        "routing": {"own_list_ids": ["support-team.groups.example.com"]},
        **extra,
    }
    if smtp:
        data["smtp"] = {"mode": "folder", "from_address": "Support <support@example.org>"}
    return parse_config(data, source="test.toml", base_dir=tmp_path)


def message(**fields: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "message_id": "<m1@mail.example.com>",
        "subject": "Számla kérdés",
        "received_at": NOW,
        "from_": Address("Kovács Ödön", "odon.kovacs@example.com"),
    }
    values.update(fields)
    return InboundMessage(**values)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


def test_an_ordinary_client_mail_is_acknowledged(settings: Settings) -> None:
    decision = plan_ack(message(), settings)
    assert decision.send
    assert decision.reason == ""


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"kind": MessageKind.AUTO_REPLY}, "auto_reply"),
        ({"headers": (("Auto-Submitted", "auto-replied"),)}, "auto_reply"),
        ({"headers": (("Auto-Submitted", "auto-generated; owner-email=x@y"),)}, "auto_reply"),
        ({"headers": (("Precedence", "auto_reply"),)}, "auto_reply"),
        ({"headers": (("X-Autoreply", "yes"),)}, "auto_reply"),
        ({"kind": MessageKind.BOUNCE}, "bounce"),
        ({"delivery_report": DeliveryReport(("x@example.net",), "5.1.1")}, "bounce"),
        ({"headers": (("Return-Path", "<>"),)}, "bounce"),
        (
            {"headers": (("Content-Type", "multipart/report; report-type=delivery-status"),)},
            "bounce",
        ),
        ({"headers": (("X-Auto-Response-Suppress", "DR, AutoReply"),)}, "suppressed"),
        ({"headers": (("X-Auto-Response-Suppress", "All"),)}, "suppressed"),
        ({"kind": MessageKind.MAILING_LIST}, "mailing_list"),
        ({"list_id": "news.lists.example.net"}, "mailing_list"),
        ({"headers": (("List-Id", "News <news.lists.example.net>"),)}, "mailing_list"),
        ({"headers": (("List-Unsubscribe", "<mailto:leave@x.example>"),)}, "mailing_list"),
        ({"headers": (("Precedence", "bulk"),)}, "mailing_list"),
        ({"headers": (("Precedence", "junk"),)}, "mailing_list"),
        ({"from_": None}, "no_address"),
        ({"from_": Address("", "not an address")}, "no_address"),
        ({"from_": Address("", "support@example.org")}, "own_address"),
        ({"from_": Address("", "OFFICE@example.com")}, "own_address"),
        ({"from_": Address("Anna", "anna@example.com")}, "own_address"),
        ({"reply_to": (Address("", "support@example.org"),)}, "own_address"),
        ({"from_": Address("", "noreply@shop.example")}, "no_reply_sender"),
        ({"from_": Address("", "No-Reply@Shop.Example")}, "no_reply_sender"),
        ({"from_": Address("Mail System", "MAILER-DAEMON@mx1.example.net")}, "no_reply_sender"),
        ({"reply_to": (Address("", "donotreply@bank.example"),)}, "no_reply_sender"),
        ({"from_": Address("", "bounces+123@mailer.example")}, "no_reply_sender"),
    ],
)  # fmt: skip
def test_no_acknowledgment(settings: Settings, fields: dict[str, Any], reason: str) -> None:
    decision = plan_ack(message(**fields), settings)
    assert not decision.send
    assert decision.reason == reason
    assert decision.detail


def test_mail_older_than_max_age_when_first_seen_is_not_acknowledged(tmp_path: Path) -> None:
    """The first start against an inbox full of old mail must not answer it all."""
    settings = make_settings(tmp_path, acknowledgments={"max_age": "3d"})
    old = message(received_at=NOW - timedelta(days=3, minutes=1))
    decision = plan_ack(old, settings, now=NOW)
    assert (decision.send, decision.reason) == (False, AckReason.TOO_OLD)
    assert "acknowledgments.max_age" in decision.detail
    assert plan_ack(message(received_at=NOW - timedelta(days=2, hours=23)), settings, now=NOW).send
    assert plan_ack(old, settings).send  # no processing time given: no age check
    unlimited = make_settings(tmp_path, acknowledgments={"max_age": 0})
    assert plan_ack(old, unlimited, now=NOW).send


def test_max_age_default_is_three_days(settings: Settings) -> None:
    assert settings.acknowledgments.max_age == 3 * 86400
    assert not plan_ack(message(received_at=NOW - timedelta(days=4)), settings, now=NOW).send


def test_auto_submitted_no_is_an_ordinary_mail(settings: Settings) -> None:
    assert plan_ack(message(headers=(("Auto-Submitted", "no"),)), settings).send


def test_our_own_list_id_is_not_suppressed(settings: Settings) -> None:
    own = message(
        headers=(
            ("List-Id", "Support team <support-team.groups.example.com>"),
            ("Precedence", "list"),
        )
    )
    assert plan_ack(own, settings).send


def test_follow_up_rule_and_rate_limit(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, acknowledgments={"max_per_sender_per_hour": 3})
    assert plan_ack(message(), settings, follow_up=True).reason == "follow_up"
    assert plan_ack(message(), settings, rule_no_ack=True).reason == "rule"
    assert plan_ack(message(), settings, recent_acks=2).send
    limited = plan_ack(message(), settings, recent_acks=3)
    assert limited.reason == "rate_limited"
    assert "max_per_sender_per_hour = 3" in limited.detail


def test_the_default_limit_lets_a_busy_client_through(settings: Settings) -> None:
    assert settings.acknowledgments.max_per_sender_per_hour == 30
    assert plan_ack(message(), settings, recent_acks=20).send


def test_loops_are_stopped_by_what_they_are_not_by_a_count(settings: Settings) -> None:
    answer = plan_ack(message(), settings, answers_ack="<ack.1001.ab@example.org>")
    assert (answer.send, answer.reason) == (False, "reply_to_ack")
    assert "<ack.1001.ab@example.org>" in answer.detail
    repeat = plan_ack(message(), settings, repeat_of="message 7 of 2024-05-14 09:00 UTC")
    assert (repeat.send, repeat.reason) == (False, "repeat")
    assert "message 7" in repeat.detail


def test_disabled(tmp_path: Path) -> None:
    off = make_settings(tmp_path, acknowledgments={"enabled": False})
    assert plan_ack(message(), off).reason == "disabled"
    assert plan_ack(message(), make_settings(tmp_path, smtp=False)).reason == "disabled"


def test_loop_signals_win_over_the_rest(settings: Settings) -> None:
    # A bounce from MAILER-DAEMON is reported as a bounce, not as a no-reply sender.
    bounce = message(
        from_=Address("", "MAILER-DAEMON@mx.example.net"), headers=(("Return-Path", "<>"),)
    )
    assert plan_ack(bounce, settings).reason == "bounce"


def test_every_reason_is_a_stable_code() -> None:
    assert {r.value for r in AckReason} == {
        "disabled", "bounce", "auto_reply", "suppressed", "mailing_list", "no_address",
        "own_address", "no_reply_sender", "follow_up", "rule", "too_old", "rate_limited",
        "feedback_report", "read_receipt", "reply_to_ack", "repeat", "no_smtp", "import",
        "parse_error", "duplicate",
    }  # fmt: skip
    assert AckReason.of_note("notification") == AckReason.NO_REPLY_SENDER
    assert AckReason.of_note("auto_reply") == AckReason.AUTO_REPLY


# The shared cases. The first-cut parser does not set `kind` yet; these pass through
# the header checks of plan_ack, which stand whatever the parser's kind detection says.


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "send", "reason"),
    [
        ("B13-out-of-office-autoreply.eml", False, "auto_reply"),
        ("B15-dsn-bounce.eml", False, "bounce"),
        ("B16-mailing-list-post.eml", False, "mailing_list"),
        ("B25-subject-crlf-injection.eml", True, ""),
    ],
)
def test_shared_cases(tmp_path: Path, cases_dir: Path, name: str, send: bool, reason: str) -> None:
    settings = parse_config(
        {"smtp": {"mode": "folder", "from_address": "Support <support@example.org>"}},
        source="test.toml",
        base_dir=tmp_path,
    )
    decision = plan_ack(parse_message((cases_dir / name).read_bytes()), settings)
    assert (decision.send, decision.reason) == (send, reason)


@pytest.mark.corpus
def test_b16_with_its_list_allowed_is_acknowledged(tmp_path: Path, cases_dir: Path) -> None:
    settings = parse_config(
        {
            "smtp": {"mode": "folder", "from_address": "support@example.org"},
            "routing": {"own_list_ids": ["hirlevel.lists.example.net"]},
        },
        source="test.toml",
        base_dir=tmp_path,
    )
    msg = parse_message((cases_dir / "B16-mailing-list-post.eml").read_bytes())
    assert plan_ack(msg, settings).send


# The per-sender limit, counted from the outbox (RFC 3834 section 2).


def ack_one(db: Database, settings: Settings, msg: InboundMessage, now: datetime, n: int) -> str:
    with db.session() as s:
        decision = decide_ack(s, msg, settings, now=now)
        if decision.send:
            mail = compose_ack(msg, ticket_ref=n, queue="unsorted", due_at=None, settings=settings,
                               now=now)  # fmt: skip
            enqueue(s, mail, kind="ack", now=now, dedupe_key=f"ack:{n}")
        return decision.reason


def test_ten_mails_from_one_sender_in_an_hour_get_exactly_the_limit(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, acknowledgments={"max_per_sender_per_hour": 3})
    reasons = []
    for n in range(10):
        at = NOW + timedelta(minutes=5 * n)
        reasons.append(ack_one(database, settings, message(message_id=f"<loop.{n}@x>"), at, n))
    assert reasons.count("") == 3
    assert reasons == ["", "", ""] + ["rate_limited"] * 7
    with database.session() as s:
        assert s.scalar(select(func.count(OutboxMail.id))) == 3
    # The window slides: an hour after the first acknowledgments the sender is answered again.
    assert ack_one(database, settings, message(), NOW + timedelta(minutes=75), 99) == ""


def test_the_limit_counts_per_address_case_insensitively(
    database: Database, tmp_path: Path
) -> None:
    settings = make_settings(tmp_path, acknowledgments={"max_per_sender_per_hour": 3})
    spellings = ["Loop@Example.com", "loop@example.com", "LOOP@EXAMPLE.COM", "loop@example.com"]
    reasons = [
        ack_one(database, settings, message(from_=Address("", a)), NOW, n)
        for n, a in enumerate(spellings)
    ]
    assert reasons == ["", "", "", "rate_limited"]
    # another sender is not affected
    assert (
        ack_one(database, settings, message(from_=Address("", "other@example.com")), NOW, 9) == ""
    )


def test_recent_ack_count_counts_only_acks_since_the_given_time(database: Database) -> None:
    def row(kind: str, at: datetime, key: str) -> None:
        with database.session() as s:
            mail = ComposedMail(f"<{key}@x>", "support@example.org", ("Client@Example.com",), b"x")
            enqueue(s, mail, kind=kind, now=at, dedupe_key=key)

    row("ack", NOW - timedelta(minutes=61), "old")
    row("ack", NOW - timedelta(minutes=10), "new")
    row("escalation", NOW, "esc")
    with database.session() as s:
        assert recent_ack_count(s, "client@example.com", NOW - timedelta(hours=1)) == 1
        assert recent_ack_count(s, "CLIENT@example.com", NOW - timedelta(hours=2)) == 2


def test_enqueue_never_queues_the_same_mail_twice(database: Database) -> None:
    first = ComposedMail("<a@x>", "support@example.org", ("c@example.com",), b"one")
    second = ComposedMail("<b@x>", "support@example.org", ("c@example.com",), b"two")
    with database.session() as s:
        one = enqueue(s, first, kind="ack", now=NOW, dedupe_key="ack:41", ticket_id=None)
        assert one.created
        assert one.row.id is not None
    with database.session() as s:
        again = enqueue(s, second, kind="ack", now=NOW, dedupe_key="ack:41")
        assert not again.created
        assert again.row.message_id == "<a@x>"
    with database.session() as s:
        rows = list(s.scalars(select(OutboxMail)))
    assert [(r.message_id, r.status, r.attempts, r.rcpt_key) for r in rows] == [
        ("<a@x>", "pending", 0, "c@example.com")
    ]
    assert rows[0].next_attempt_at == NOW


class Boom(Exception):
    pass


def test_enqueue_rolls_back_with_the_callers_transaction(database: Database) -> None:
    mail = ComposedMail("<a@x>", "support@example.org", ("c@example.com",), b"one")
    with pytest.raises(Boom), database.session() as s:
        enqueue(s, mail, kind="ack", now=NOW, dedupe_key="ack:1")
        raise Boom
    with database.session() as s:
        assert s.scalar(select(func.count(OutboxMail.id))) == 0
