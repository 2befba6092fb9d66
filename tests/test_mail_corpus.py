"""Every real message of ../shared/corpus through the parser: none raises, none records an
error, and the counts by kind are reported on the terminal (visible without -s). Fixture
files that are not messages (reply bodies, an Outlook .msg) are recognised as such."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest

from triage.domain import MessageKind, ParseStatus
from triage.mail import parse_message
from triage.mail.parse import NOT_MAIL_ERROR

pytestmark = [pytest.mark.corpus, pytest.mark.slow]

NEWSGROUPS_SAMPLE = 2000
"""Every n-th 20 Newsgroups post, so the sample spans all groups and both splits."""


NOT_MESSAGES = (
    "fixtures/github_email_reply_parser/",  # reply bodies, no header block
    "fixtures/zapier_email-reply-parser/",
    "fixtures/mailgun_talon/tests/fixtures/signature/emails/stripped/",
    "fixtures/mailgun_talon/tests/fixtures/signature/emails/P/johndoeexamplecom_",
    "fixtures/mailgun_talon/tests/fixtures/standard_replies/iphone_reply_text",
    "fixtures/mailgun_talon/tests/fixtures/standard_replies/sparrow_reply_text",
    "fixtures/cpython_test_email_via_RustPython/msg_19.txt",  # a digest body, no headers
    "fixtures/spamscope_mail-parser/tests/mails/mail_outlook_1",  # an Outlook .msg (OLE2) file
)
"""Fixture files that are not RFC 5322 messages: the parser must say so."""


def _is_message(corpus: Path, path: Path) -> bool:
    return path.suffix != ".html" and not str(path.relative_to(corpus)).startswith(NOT_MESSAGES)


def _messages(corpus: Path) -> list[tuple[str, bytes]]:
    spam = sorted(p for p in (corpus / "spamassassin").rglob("*") if p.is_file())
    fixtures = sorted(
        p for p in (corpus / "fixtures").rglob("*") if p.is_file() and _is_message(corpus, p)
    )
    news = sorted(p for p in (corpus / "20newsgroups").rglob("*") if p.is_file())
    step = max(1, len(news) // NEWSGROUPS_SAMPLE)
    chosen = [*spam, *fixtures, *news[::step]]
    return [(str(p.relative_to(corpus)), p.read_bytes()) for p in chosen]


def test_every_corpus_message_parses_without_raising(corpus_dir, capsys):
    messages = _messages(corpus_dir)
    assert len(messages) > 8000
    kinds: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    exceptions: list[str] = []
    fallbacks = 0
    with_errors: list[str] = []
    start = time.perf_counter()
    for name, raw in messages:
        try:
            parsed = parse_message(raw)
        except Exception as exc:  # the point of the test: count, never crash
            exceptions.append(f"{name}: {type(exc).__name__}: {exc}")
            continue
        kinds[parsed.kind.value] += 1
        statuses[parsed.parse_status.value] += 1
        fallbacks += parsed.charset_fallback
        if parsed.parse_status is not ParseStatus.OK or parsed.parse_error:
            with_errors.append(f"{name}: {parsed.parse_error}")
        for text in (parsed.subject, parsed.body_text, *(v for _k, v in parsed.headers)):
            assert "\x00" not in text, name
        assert parsed.size == len(raw)
    elapsed = time.perf_counter() - start
    clean = len(messages) - len(exceptions) - len(with_errors)
    with capsys.disabled():
        print(
            f"\ncorpus: {len(messages)} messages in {elapsed:.1f} s; parsed cleanly {clean}, "
            f"recorded an error {len(with_errors)}, raised {len(exceptions)}; "
            f"charset guessed {fallbacks}; status {dict(statuses)}; kind {dict(kinds)}"
        )
        for line in with_errors[:10]:
            print("  error:", line)
    assert exceptions == []
    assert with_errors == []  # real mail is never "not mail", nor any other error
    assert kinds[MessageKind.MAILING_LIST.value] > 1000  # SpamAssassin ham is mostly list mail
    assert kinds[MessageKind.BOUNCE.value] >= 1
    assert kinds[MessageKind.NORMAL.value] > 3000


def test_fixture_files_that_are_not_messages_are_errors_not_tickets(corpus_dir):
    """Reply bodies without headers, a digest body and an Outlook .msg file are not mail:
    parse_status error, so they go to the fallback queue instead of becoming tickets."""
    files = [
        p
        for p in sorted((corpus_dir / "fixtures").rglob("*"))
        if p.is_file() and p.suffix != ".html" and not _is_message(corpus_dir, p)
    ]
    assert len(files) > 50
    for path in files:
        parsed = parse_message(path.read_bytes())
        assert parsed.parse_status is ParseStatus.ERROR, path
        assert parsed.parse_error == NOT_MAIL_ERROR, path


def test_declared_working_charsets_are_not_flagged_as_guessed(corpus_dir):
    """A declared, working charset is never flagged as a fallback: the flag means something."""
    folder = corpus_dir / "spamassassin" / "easy_ham"
    flagged = [
        p.name
        for p in sorted(folder.iterdir())[:500]
        if parse_message(p.read_bytes()).charset_fallback
    ]
    assert len(flagged) < 25, flagged
