"""`triage rules test` replays the whole decision (issue 14.1) over mail the pipeline stored.

Mail goes in through the composition root's intake and pipeline (SQLite file), as
`triage run` stores it; then `triage rules test` replays the same decision function
read-only: with the configured rules nothing changes, and a rule file that flips
decisions (no acknowledgment for invoices, a no-reply sender's notices to a queue)
shows each flip, per message and in the totals.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from sqlalchemy import select
from support.cli import run_triage

from triage.assembly import assemble
from triage.clock import FixedClock
from triage.config import load_config
from triage.imap.responses import FetchedMessage
from triage.imap.watch import SyncPlan
from triage.services.pipeline import ModelHolder
from triage.store import Database
from triage.store.models import RoutingDecision

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime.now(UTC).replace(microsecond=0)

EXTRA = """
[[rule]]
name = "quiet-invoices"
when = { field = "subject", contains = "invoice" }
then = { no_ack = true }

[[rule]]
name = "bank-notices"
when = { field = "from", contains = "noreply@bank.example" }
then = { queue = "billing" }
"""


def mail(frm: str, subject: str, body: str, **headers: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = frm
    msg["To"] = "Example Office <inbox@example.com>"
    msg["Subject"] = subject
    msg["Message-ID"] = headers.pop("message_id", f"<{abs(hash((frm, subject)))}@client.example>")
    for key, value in headers.items():
        msg[key.replace("_", "-")] = value
    msg.set_content(body)
    return msg.as_bytes()


@pytest.fixture
def stored(tmp_path: Path) -> Path:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    text = text.replace('url = "sqlite:///triage.db"', f'url = "sqlite:///{tmp_path / "t.db"}"')
    text = text.replace('mode = "send"', 'mode = "folder"')
    config = tmp_path / "triage.toml"
    config.write_text(text, encoding="utf-8")
    settings = load_config(config)
    db = Database.open(settings.database.url)
    try:
        parts = assemble(settings, db, clock=FixedClock(NOW), models=ModelHolder(), poll=False)
        first = mail(
            "Emma Walker <emma@bakery.example>",
            "Question about invoice 2026112",
            "Hello, the amount on invoice 2026112 is wrong. Could you check it?",
            message_id="<first@bakery.example>",
        )
        inbox = [
            first,
            mail("Bob <bob@shop.example>", "Hello", "Can we talk about the new contract?"),
            mail("Bank <noreply@bank.example>", "Account statement", "Your statement is ready."),
            mail(
                "Emma Walker <emma@bakery.example>",
                "Re: [#1001] Question about invoice 2026112",
                "Any news?",
                In_Reply_To="<first@bakery.example>",
            ),
            first,  # delivered twice
        ]
        plan = SyncPlan(folder="INBOX", uidvalidity=7, first_uid=1)
        for uid, raw in enumerate(inbox, start=1):
            parts.intake.store(plan, FetchedMessage(uid, raw, NOW, len(raw)))
        with db.read_session() as s:
            acks = [d.ack for d in s.scalars(select(RoutingDecision).order_by(RoutingDecision.id))]
        # what the pipeline decided: open+ack, open+ack, stored only, join, duplicate
        assert acks[0] == ""
        assert acks[2:] == ["no_reply_sender", "follow_up", "duplicate"]
    finally:
        db.dispose()
    return tmp_path


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


def test_replaying_the_configured_rules_changes_nothing_the_pipeline_decided(stored):
    before = dump(stored / "t.db")
    done = run_triage("--config", str(stored / "triage.toml"), "rules", "test")
    assert done.exit_code == 0, done.stderr
    assert "replayed 5 messages: 0 would change" in done.stdout, done.stdout
    assert "  replayed now: duplicate 1, join 1, open 2, store 1" in done.stdout
    assert dump(stored / "t.db") == before  # read-only


def test_a_rule_change_that_flips_decisions_shows_each_flip(stored):
    extra = stored / "extra.toml"
    extra.write_text(EXTRA, encoding="utf-8")
    done = run_triage(
        "--config",
        str(stored / "triage.toml"),
        "rules",
        "test",
        "--rules",
        str(ROOT / "rules" / "default.toml"),
        "--rules",
        str(extra),
    )
    assert done.exit_code == 0, done.stderr
    out = done.stdout
    blocks = out.split("message ")
    invoice = next(b for b in blocks if "'Question about invoice 2026112'" in b)
    assert "acknowledgment: queued -> rule  (a rule marked it: no acknowledgment)" in invoice
    bank = next(b for b in blocks if "'Account statement'" in b)
    assert "action: store -> open" in bank
    assert "'Hello'" not in out  # no rule touches it: the same decision
    assert "replayed 5 messages: 2 would change" in out
    assert "  action changes (open, join, duplicate, store): 1" in out
    assert "  acknowledgment changes: 1" in out
