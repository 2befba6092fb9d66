"""Composing acknowledgments: headers, templates per language and queue, local deadlines, safety."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from support.smtp import SmtpServer

from triage.clock import FixedClock
from triage.config import Settings, parse_config
from triage.domain import Address, InboundMessage
from triage.errors import ConfigError
from triage.mail import parse_message
from triage.outbox import (
    MailTemplates,
    build_mail,
    compose_ack,
    enqueue,
    header_safe,
    plan_ack,
    reply_subject,
)
from triage.services.dispatch import Dispatcher
from triage.smtp import SmtpSender
from triage.store import Database

NOW = datetime(2024, 5, 14, 11, 0, 5, tzinfo=UTC)
DUE = datetime(2024, 5, 14, 13, 0, tzinfo=UTC)  # 15:00 in Budapest (CEST)


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = merge(out[key], value) if isinstance(value, dict) and key in out else value
    return out


def make_settings(tmp_path: Path, **extra: Any) -> Settings:
    data = {
        "smtp": {"mode": "folder", "from_address": "Példa Iroda <inbox@example.com>"},
        "team": {"name": "Példa Iroda", "addresses": ["office@example.com"]},
        "calendar": {"timezone": "Europe/Budapest"},
        "queues": {"unsorted": {}, "billing": {"description": "Számlák"}},
    }
    return parse_config(merge(data, extra), source="test.toml", base_dir=tmp_path)


def client_message(**fields: Any) -> InboundMessage:
    values: dict[str, Any] = {
        "message_id": "<b01.7c1e@mail.example.com>",
        "subject": "Számla kérdés – sürgős",
        "received_at": NOW,
        "from_": Address("Kovács Ödön", "odon.kovacs@example.com"),
        "references": ("<older.1@mail.example.com>",),
        "language": "hu",
    }
    values.update(fields)
    return InboundMessage(**values)


def parsed(raw: bytes) -> EmailMessage:
    msg = message_from_bytes(raw, policy=policy.default)
    assert isinstance(msg, EmailMessage)
    return msg


def body_of(raw: bytes) -> str:
    part = parsed(raw).get_body()
    assert part is not None
    return "\n".join(part.get_content().splitlines())


def header_lines(raw: bytes) -> list[str]:
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return head.split("\r\n")


def test_ack_headers(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    mail = compose_ack(
        client_message(), ticket_ref=1042, queue="billing", due_at=DUE, settings=s, now=NOW
    )
    msg = parsed(mail.raw)
    assert msg["Subject"] == "Re: [#1042] Számla kérdés – sürgős"
    assert msg["From"] == "Példa Iroda <inbox@example.com>"
    assert msg["To"] == "Kovács Ödön <odon.kovacs@example.com>"
    assert msg["In-Reply-To"] == "<b01.7c1e@mail.example.com>"
    assert msg["References"] == "<older.1@mail.example.com> <b01.7c1e@mail.example.com>"
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["X-Auto-Response-Suppress"] == "All"
    assert msg["Message-ID"] == mail.message_id
    assert re.fullmatch(r"<ack\.1042\.[0-9a-f]+@example\.com>", mail.message_id)
    assert msg["Date"] is not None
    assert mail.mail_from == "inbox@example.com"
    assert mail.rcpt_to == ("odon.kovacs@example.com",)
    assert mail.template == "ack/default.hu.j2"
    assert all(len(line) <= 78 for line in header_lines(mail.raw))
    assert mail.raw.count(b"\r\n") == mail.raw.count(b"\n")  # CRLF everywhere


@pytest.mark.parametrize("name", ["Iroda Kft.", "Dr. J. Smith", "Kovács és Tsa. Bt."])
def test_a_from_name_with_a_period_goes_out_quoted_without_defects(
    tmp_path: Path, name: str
) -> None:
    """A company name like 'Iroda Kft.' is an obs-phrase (RFC 5322 section 4.1): the config
    accepts it and the acknowledgment's From is written as a valid, quoted phrase."""
    s = make_settings(tmp_path, smtp={"from_address": f"{name} <inbox@example.com>"})
    mail = compose_ack(
        client_message(), ticket_ref=1042, queue="billing", due_at=DUE, settings=s, now=NOW
    )
    msg = parsed(mail.raw)
    assert not msg["From"].defects
    [address] = msg["From"].addresses
    assert (address.display_name, address.addr_spec) == (name, "inbox@example.com")
    assert mail.mail_from == "inbox@example.com"


def test_reply_to_wins_over_from_and_message_id_domain_is_configurable(tmp_path: Path) -> None:
    s = make_settings(tmp_path, team={"message_id_domain": "helpdesk.example.org"})
    message = client_message(reply_to=(Address("Könyvelés", "konyveles@example.com"),))
    mail = compose_ack(message, ticket_ref=7, queue="unsorted", due_at=None, settings=s, now=NOW)
    assert mail.rcpt_to == ("konyveles@example.com",)
    assert parsed(mail.raw)["To"] == "Könyvelés <konyveles@example.com>"
    assert mail.message_id.endswith("@helpdesk.example.org>")


def test_each_ack_gets_its_own_message_id(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    ids = {
        compose_ack(
            client_message(), ticket_ref=1, queue="unsorted", due_at=None, settings=s, now=NOW
        ).message_id
        for _ in range(20)
    }
    assert len(ids) == 20


def test_hungarian_template_for_hungarian_mail_with_the_local_deadline(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    mail = compose_ack(
        client_message(), ticket_ref=1042, queue="billing", due_at=DUE, settings=s, now=NOW
    )
    body = body_of(mail.raw)
    assert "Kedves Kovács Ödön!" in body
    assert "#1042 ügyszámon" in body
    assert "legkésőbb eddig számíthat: 2024. május 14. (kedd) 15:00." in body
    assert body.rstrip().endswith("Példa Iroda")


@pytest.mark.parametrize("language", ["en", "", "de"])
def test_english_otherwise(tmp_path: Path, language: str) -> None:
    s = make_settings(tmp_path)
    message = client_message(language=language, subject="Invoice question")
    mail = compose_ack(message, ticket_ref=1042, queue="billing", due_at=DUE, settings=s, now=NOW)
    body = body_of(mail.raw)
    assert mail.template == "ack/default.en.j2"
    assert "Dear Kovács Ödön," in body
    assert "reference #1042" in body
    assert "by Tuesday 14 May 2024, 15:00 CEST at the latest" in body
    assert parsed(mail.raw)["Subject"] == "Re: [#1042] Invoice question"


def test_default_language_applies_when_the_message_has_no_template(tmp_path: Path) -> None:
    s = make_settings(tmp_path, acknowledgments={"default_language": "hu"})
    mail = compose_ack(
        client_message(language="de"),
        ticket_ref=3,
        queue="billing",
        due_at=DUE,
        settings=s,
        now=NOW,
    )
    assert mail.template == "ack/default.hu.j2"


def test_winter_deadline_is_shown_in_cet(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    due = datetime(2024, 1, 15, 13, 0, tzinfo=UTC)
    english = compose_ack(
        client_message(language="en"),
        ticket_ref=5,
        queue="billing",
        due_at=due,
        settings=s,
        now=NOW,
    )
    assert "Monday 15 January 2024, 14:00 CET" in body_of(english.raw)
    hungarian = compose_ack(
        client_message(), ticket_ref=5, queue="billing", due_at=due, settings=s, now=NOW
    )
    assert "2024. január 15. (hétfő) 14:00" in body_of(hungarian.raw)


def test_no_deadline_for_a_queue_without_sla(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    mail = compose_ack(
        client_message(language="en"), ticket_ref=9, queue="unsorted", due_at=None, settings=s,
        now=NOW,
    )  # fmt: skip
    body = body_of(mail.raw)
    assert "as soon as we can" in body
    assert "at the latest" not in body


def test_hungarian_subject_and_body_encode_correctly(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    subject = "Árvíztűrő tükörfúrógép – őszi számla"
    mail = compose_ack(
        client_message(subject=subject), ticket_ref=11, queue="billing", due_at=DUE, settings=s,
        now=NOW,
    )  # fmt: skip
    assert mail.raw.isascii()  # RFC 2047 headers, quoted-printable body
    msg = parsed(mail.raw)
    assert msg["Subject"] == f"Re: [#11] {subject}"
    assert "Köszönjük levelét" in body_of(mail.raw)
    assert not msg.defects


INJECTIONS = [
    "Jelszó visszaállítás\r\nBcc: leak@example.net",
    "Jelszó visszaállítás\nBcc: leak@example.net",
    "Jelszó visszaállítás\rBcc: leak@example.net",
    "Jelszó visszaállítás\u2028Bcc: leak@example.net",
    "Jelszó visszaállítás\x85Bcc: leak@example.net",
    "Jelszó visszaállítás\x00\x0bBcc: leak@example.net",
    "Jelszó visszaállítás\r\n\r\nBcc: leak@example.net",
]


def assert_one_subject_no_bcc(raw: bytes) -> None:
    msg = parsed(raw)
    assert len(msg.get_all("Subject") or []) == 1
    assert msg.get_all("Bcc") is None
    assert msg.get_all("Cc") is None
    assert len(msg.get_all("To") or []) == 1
    assert not [line for line in header_lines(raw) if line.lower().startswith("bcc")]
    assert str(msg["Subject"]) == "Re: [#1042] Jelszó visszaállítás Bcc: leak@example.net"


@pytest.mark.parametrize("subject", INJECTIONS)
def test_header_injection_in_the_subject_b25_kind(tmp_path: Path, subject: str) -> None:
    s = make_settings(tmp_path)
    message = client_message(subject=subject)
    mail = compose_ack(message, ticket_ref=1042, queue="billing", due_at=DUE, settings=s, now=NOW)
    assert_one_subject_no_bcc(mail.raw)
    assert mail.rcpt_to == ("odon.kovacs@example.com",)


def test_injection_through_display_name_and_message_ids(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    message = client_message(
        from_=Address("Evil\r\nBcc: leak@example.net", "odon.kovacs@example.com"),
        message_id="<ok@mail.example.com>\r\nBcc: leak@example.net",
        references=("garbage\r\nX-Evil: 1", "<ref.1@example.com>"),
    )
    mail = compose_ack(message, ticket_ref=1, queue="unsorted", due_at=None, settings=s, now=NOW)
    msg = parsed(mail.raw)
    assert msg.get_all("Bcc") is None
    assert msg.get_all("X-Evil") is None
    assert msg["In-Reply-To"] == "<ok@mail.example.com>"
    assert msg["References"] == "<ref.1@example.com> <ok@mail.example.com>"
    assert msg["To"].addresses[0].addr_spec == "odon.kovacs@example.com"
    assert not [line for line in header_lines(mail.raw) if line.lower().startswith("bcc")]


def test_synthetic_message_id_is_not_referenced(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    message = client_message(
        message_id="<synthetic.abc@triage.invalid>", message_id_synthetic=True, references=()
    )
    mail = compose_ack(message, ticket_ref=1, queue="unsorted", due_at=None, settings=s, now=NOW)
    msg = parsed(mail.raw)
    assert msg["In-Reply-To"] is None
    assert msg["References"] is None


def test_b25_case_file_ack_goes_only_to_the_client(
    tmp_path: Path, cases_dir: Path, smtp_server: SmtpServer, sqlite_url: str
) -> None:
    message = parse_message((cases_dir / "B25-subject-crlf-injection.eml").read_bytes())
    s = make_settings(tmp_path)
    decision = plan_ack(message, s)
    assert decision.send
    mail = compose_ack(message, ticket_ref=1042, queue="billing", due_at=DUE, settings=s, now=NOW)
    assert_one_subject_no_bcc(mail.raw)
    assert mail.rcpt_to == ("odon.kovacs@example.com",)
    db = Database.open(sqlite_url)
    try:
        with db.session() as session:
            enqueue(session, mail, kind="ack", now=NOW, dedupe_key="ack:b25")
        sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
        assert asyncio.run(Dispatcher(db, sender, clock=FixedClock(NOW)).run_once()).sent == 1
    finally:
        db.dispose()
    [got] = smtp_server.sink.wait_for(1)
    assert got.rcpt_tos == ["odon.kovacs@example.com"]
    assert_one_subject_no_bcc(got.content.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


def test_templates_dir_overrides_and_queue_templates(tmp_path: Path) -> None:
    own = tmp_path / "templates" / "ack"
    own.mkdir(parents=True)
    (own / "default.en.j2").write_text(
        "{% block body %}Own text for {{ ticket }}.{% endblock %}\n", encoding="utf-8"
    )
    (own / "billing.hu.j2").write_text(
        "{% block subject %}Számla: {{ ticket }}{% endblock %}"
        "{% block body %}Számlaügy {{ ticket }}, {{ queue_description }}.{% endblock %}\n",
        encoding="utf-8",
    )
    s = make_settings(tmp_path, acknowledgments={"templates_dir": "templates"})
    english = compose_ack(
        client_message(language="en"), ticket_ref=4, queue="unsorted", due_at=None, settings=s,
        now=NOW,
    )  # fmt: skip
    assert body_of(english.raw) == "Own text for #4."
    billing = compose_ack(
        client_message(), ticket_ref=5, queue="billing", due_at=None, settings=s, now=NOW
    )
    assert billing.template == "ack/billing.hu.j2"
    assert parsed(billing.raw)["Subject"] == "Számla: #5"
    assert body_of(billing.raw) == "Számlaügy #5, Számlák."
    other = compose_ack(
        client_message(), ticket_ref=6, queue="unsorted", due_at=None, settings=s, now=NOW
    )
    assert other.template == "ack/default.hu.j2"  # the shipped one still serves other queues


def test_a_template_typo_is_a_config_error(tmp_path: Path) -> None:
    own = tmp_path / "t" / "ack"
    own.mkdir(parents=True)
    (own / "default.en.j2").write_text("{% block body %}{{ tikcet }}{% endblock %}")
    s = make_settings(tmp_path, acknowledgments={"templates_dir": "t"})
    with pytest.raises(ConfigError, match="tikcet"):
        compose_ack(
            client_message(language="en"), ticket_ref=1, queue="unsorted", due_at=None,
            settings=s, now=NOW,
        )  # fmt: skip


def test_missing_templates_dir_is_a_config_error(tmp_path: Path) -> None:
    s = make_settings(tmp_path, acknowledgments={"templates_dir": "nope"})
    with pytest.raises(ConfigError, match="templates_dir"):
        MailTemplates.from_settings(s)


def test_shipped_templates_compile_and_ship_as_package_data() -> None:
    templates = MailTemplates()
    assert templates.check() == []
    for name in (
        "ack/default.en.j2",
        "ack/default.hu.j2",
        "escalation/breach.en.j2",
        "escalation/breach.hu.j2",
        "escalation/warning.en.j2",
        "escalation/warning.hu.j2",
        "escalation/digest.en.j2",
        "escalation/digest.hu.j2",
    ):
        assert templates.exists(name), name
        assert (files("triage.outbox") / "templates" / name).is_file(), name
    assert templates.languages("ack/default") == {"en", "hu"}


@pytest.mark.parametrize(
    ("original", "expected"),
    [
        ("Számla kérdés", "Re: [#12] Számla kérdés"),
        ("Re: Számla kérdés", "Re: [#12] Számla kérdés"),
        ("RE: AW: Válasz: Számla", "Re: [#12] Számla"),
        ("Számla [#12]", "Re: [#12] Számla"),
        ("", "Re: [#12]"),
        ("   \r\n ", "Re: [#12]"),
        ("Rendelés: 5 db", "Re: [#12] Rendelés: 5 db"),
    ],
)
def test_reply_subject(original: str, expected: str) -> None:
    assert reply_subject(original, 12) == expected


def test_compose_refuses_a_message_without_reply_address(tmp_path: Path) -> None:
    s = make_settings(tmp_path)
    with pytest.raises(ValueError, match="no_address"):
        compose_ack(
            client_message(from_=None), ticket_ref=1, queue="unsorted", due_at=None, settings=s,
            now=NOW,
        )  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=240), st.text(max_size=80))
def test_any_subject_and_name_survive_the_round_trip_as_one_header(subject: str, name: str) -> None:
    raw = build_mail(
        message_id="<x@example.com>",
        sender=("Office", "inbox@example.com"),
        to=[(name, "client@example.net")],
        subject=subject,
        body="x\n",
        now=NOW,
        auto_submitted="auto-replied",
    )
    msg = parsed(raw)
    assert len(msg.get_all("Subject") or []) == 1
    assert str(msg["Subject"]) == (header_safe(subject) or "(no subject)")
    [address] = msg["To"].addresses
    assert address.addr_spec == "client@example.net"
    # A display name over one encoded-word (75 characters, RFC 2047 section 2) is several
    # adjacent encoded-words; RFC 2047 section 6.2 drops the white space between them, as
    # our parser and email.header do. Python's headerregistry keeps it (a space may show
    # up between the words, never a character lost), so it is compared without spaces.
    expected = header_safe(name, limit=200)
    assert address.display_name.replace(" ", "") == expected.replace(" ", "")
    [to] = parse_message(raw).to
    assert (to.name, to.addr) == (expected, "client@example.net")
    assert [k for k, _ in msg.items()] == [
        "From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted",
        "X-Auto-Response-Suppress", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    ]  # fmt: skip


def test_a_persons_mail_carries_no_automatic_markers() -> None:
    raw = build_mail(
        message_id="<reply.1@example.com>",
        sender=("Anna", "inbox@example.com"),
        to=[("", "client@example.net")],
        subject="Re: Számla [#1]",
        body="Kedves Ödön!\n",
        now=NOW,
        auto_submitted=None,
        in_reply_to="<m1@mail.example.com>",
    )
    msg = parsed(raw)
    assert msg["Auto-Submitted"] is None
    assert msg["X-Auto-Response-Suppress"] is None
    assert msg["In-Reply-To"] == "<m1@mail.example.com>"


def test_a_client_at_an_international_domain_is_acknowledged_via_its_idna_form(
    tmp_path: Path,
) -> None:
    settings = make_settings(tmp_path)
    message = client_message(from_=Address("Kovács", "kovacs@kávéház.hu"))
    assert plan_ack(message, settings).send
    mail = compose_ack(
        message, ticket_ref=1042, queue="billing", due_at=DUE, settings=settings, now=NOW
    )
    assert mail.rcpt_to == ("kovacs@xn--kvhz-5nac8c.hu",)
    assert "kovacs@xn--kvhz-5nac8c.hu" in str(parsed(mail.raw)["To"])


def test_a_non_ascii_local_part_gets_no_ack_and_says_why(tmp_path: Path) -> None:
    decision = plan_ack(
        client_message(from_=Address("", "ödön@example.com")), make_settings(tmp_path)
    )
    assert (decision.send, decision.reason) == (False, "no_address")
    assert "SMTPUTF8" in decision.detail
