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
