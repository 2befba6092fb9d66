"""The shipped rules on real mail: the shared cases (Hungarian charsets) and the corpus."""

from __future__ import annotations

import dataclasses
import itertools
from pathlib import Path

import pytest

from triage.config import load_config
from triage.domain import MessageKind, Priority
from triage.mail import parse_message
from triage.rule_files import load_configured_rules

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.corpus


@pytest.fixture(scope="module")
def default_rules():
    return load_configured_rules(load_config(ROOT / "config.example.toml"))


@pytest.mark.parametrize(
    "case",
    [
        "B01-windows1250-html-only.eml",
        "B02-iso8859-2-body.eml",
        "B04-encoded-word-split-multibyte.eml",
        "B08-missing-charset-8bit.eml",
    ],
)
def test_hungarian_invoice_questions_go_to_billing_with_high_priority(
    cases_dir, default_rules, case
):
    msg = parse_message((cases_dir / case).read_bytes())
    decision = default_rules.evaluate(msg)
    assert decision.queue == "billing"
    assert decision.priority is Priority.HIGH
    assert decision.matched[:2] == ("invoice", "urgent-words")
    # the invoice rule is a regex since it stopped matching 'bankszámla' (a bank account)
    assert "subject matches" in decision.explanation[0]
    assert "at 'Számla'" in decision.explanation[0]
    assert "contains 'sürgős'" in decision.explanation[1]


def test_an_out_of_office_quoting_an_invoice_subject_does_not_reach_billing(
    cases_dir, default_rules
):
    msg = parse_message((cases_dir / "B13-out-of-office-autoreply.eml").read_bytes())
    assert "Számla" in msg.subject
    # The parser marks RFC 3834 auto-replies; the rules see the kind it found.
    auto = dataclasses.replace(msg, kind=MessageKind.AUTO_REPLY)
    decision = default_rules.evaluate(auto)
    assert decision.queue == "bulk"
    assert decision.suppress_ack is True
    assert decision.matched == ("auto-reply",)
    assert decision.stopped_by == "auto-reply"


def test_every_corpus_message_evaluates_with_reasons(corpus_dir, default_rules):
    folders = [corpus_dir / "spamassassin" / "easy_ham", corpus_dir / "spamassassin" / "spam"]
    files = list(
        itertools.islice((p for f in folders if f.is_dir() for p in sorted(f.iterdir())), 400)
    )
    if not files:
        pytest.skip("no SpamAssassin messages in the corpus")
    hits = 0
    for path in files:
        decision = default_rules.evaluate(parse_message(path.read_bytes()))
        for hit in decision.hits:
            hits += 1
            assert hit.reasons
            assert all(reason.strip() for reason in hit.reasons)
        assert len(decision.explanation) >= len(decision.hits)
    assert hits > 0


def _mail(subject: str, body: str, *headers: str) -> bytes:
    head = "".join(f"{h}\r\n" for h in headers)
    return (
        "From: Kiss Anna <anna@kisskft.example>\r\nTo: iroda@example.com\r\n"
        f"Subject: {subject}\r\nMessage-ID: <{abs(hash(subject))}@x.example>\r\n{head}"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        f"{body}\r\n"
    ).encode()


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        # a supplier's invoice forwarded for the books (records)
        ("Fwd: Számla 2025/00871", "Kérem, könyveljék le.\n\n---------- Forwarded message"),
        ("TR: Invoice INV-2025-1182", "please book this one"),
        ("Továbbítás: E.ON számla", "A villanyszámla, a könyveléshez."),
        # VAT paperwork (records)
        ("ÁFA – hiányzó számlák", "Küldöm a hiányzó bejövő számlákat az áfabevalláshoz."),
        ("invoice without our tax number", "Can we claim the VAT on this supplier invoice?"),
        # a meeting about invoices (scheduling)
        ("Számlaegyeztetés – időpont", "Jövő kedden 10-kor megfelelne?"),
        ("Re: Elfogadva: Számlaegyeztetés", "Rendben, ott leszek."),
        ("Can we meet about the open invoices?", "Would Thursday suit you for a meeting?"),
        # the portal while downloading an invoice (client-support)
        ("Portal: invoices open empty", "When I click an invoice on the portal the page is blank."),
        ("hiba a számla letöltésekor", "A portálon nem tudom letölteni."),
    ],
)
def test_the_invoice_rule_leaves_records_meetings_and_portal_mail_to_the_model(
    default_rules, subject, body
):
    decision = default_rules.evaluate(parse_message(_mail(subject, body)))
    assert "invoice" not in decision.matched
    assert decision.queue != "billing"


@pytest.mark.parametrize(
    ("subject", "body"),
    [
        ("Re: 2024/0312 számla – rossz összeg", "54 000 Ft szerepel, 45 000 Ft-ban egyeztünk."),
        ("Payment reminder for invoice 2025/114", "We paid this last week, please check."),
        ("Számla kiegyenlítése", "Mikorra kell fizetnünk a decemberi díjat?"),
        ("refund", "You charged us twice for March, please refund one."),
    ],
)
def test_the_invoice_rule_still_takes_the_offices_own_invoices(default_rules, subject, body):
    decision = default_rules.evaluate(parse_message(_mail(subject, body)))
    assert decision.queue == "billing"
    assert decision.matched[0] == "invoice"


def test_a_clients_automatic_payment_notice_is_not_sent_to_bulk(default_rules):
    """A bank's or ERP's "we paid" notice is machine-made (RFC 3834) but billing work."""
    notice = parse_message(
        _mail(
            "Átutalási értesítő – 2025/0312",
            "Tisztelt Partnerünk! Értesítjük, hogy 54 000 Ft átutalásra került.",
            "Auto-Submitted: auto-generated",
        )
    )
    assert notice.kind is MessageKind.AUTO_REPLY
    decision = default_rules.evaluate(notice)
    assert "auto-reply" not in decision.matched
    assert decision.queue != "bulk"
    english = parse_message(
        _mail(
            "Payment advice",
            "Remittance advice: invoice 114 has been paid.",
            "Auto-Submitted: auto-generated",
        )
    )
    assert default_rules.evaluate(english).queue != "bulk"
    away = parse_message(
        _mail(
            "Házon kívül: Számla",
            "Szabadságon vagyok január 10-ig.",
            "Auto-Submitted: auto-replied",
        )
    )
    assert default_rules.evaluate(away).matched == ("auto-reply",)
