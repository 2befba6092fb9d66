"""`triage outbox` as an operator runs it: pending and failed mail, JSON, retry.

In-process through :func:`support.cli.run_triage` (click's CliRunner).
"""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from support.cli import run_triage
from support.smtp import SmtpServer

from triage.clock import FixedClock
from triage.config import load_config
from triage.outbox import ComposedMail, build_mail, enqueue, outbox_summary
from triage.services.dispatch import Dispatcher
from triage.smtp import SmtpSender
from triage.store import Database
from triage.store.models import OutboxMail, Ticket

pytestmark = pytest.mark.smtp

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)  # 11:00 in Budapest

CONFIG = """
[database]
url = "sqlite:///triage.db"
[smtp]
mode = "send"
host = "127.0.0.1"
port = {port}
security = "none"
from_address = "Office <inbox@example.com>"
timeout = "5s"
[calendar]
timezone = "Europe/Budapest"
"""


def run(config: Path, *args: str) -> Result:
    return run_triage("--config", str(config), "--log-format", "json", "outbox", *args)


@pytest.fixture
def setup(tmp_path: Path, smtp_server: SmtpServer) -> tuple[Path, Database]:
    """Three acks: one failed with a 5xx, one deferred by a 451, one sent."""
    config = tmp_path / "triage.toml"
    config.write_text(CONFIG.format(port=smtp_server.port), encoding="utf-8")
    db = Database.open(f"sqlite:///{tmp_path / 'triage.db'}")
    with db.session() as s:
        ticket = Ticket(ref=1042, queue="unsorted", priority="normal", opened_at=T0)
        s.add(ticket)
        s.flush()
        for n, addr in enumerate(["bad@example.net", "slow@example.net", "ok@example.net"]):
            raw = build_mail(
                message_id=f"<ack.{n}@example.com>",
                sender=("Office", "inbox@example.com"),
                to=[("", addr)],
                subject=f"Re: Számla {n} [#1042]",
                body="ok\n",
                now=T0,
                auto_submitted="auto-replied",
            )
            mail = ComposedMail(f"<ack.{n}@example.com>", "inbox@example.com", (addr,), raw)
            enqueue(s, mail, kind="ack", now=T0, dedupe_key=f"ack:{n}", ticket_id=ticket.id)
    smtp_server.sink.replies = [
        "550 5.1.1 <bad@example.net>: Recipient address rejected",
        "451 4.7.1 Greylisted, try again",
    ]
    sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
    stats = asyncio.run(Dispatcher(db, sender, clock=FixedClock(T0)).run_once())
    assert (stats.sent, stats.deferred, stats.failed) == (1, 1, 1)
    return config, db


def test_lists_pending_and_failed_with_attempts_next_attempt_and_error(
    setup: tuple[Path, Database],
) -> None:
    config, db = setup
    done = run(config)
    assert done.exit_code == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split()[:4] == ["ID", "KIND", "STATUS", "TICKET"]
    failed = next(line for line in lines if "bad@example.net" in line)
    assert "failed" in failed
    assert "#1042" in failed
    assert "550 5.1.1 <bad@example.net>: Recipient address rejected" in failed
    pending = next(line for line in lines if "slow@example.net" in line)
    assert "pending" in pending
    assert "451 4.7.1 Greylisted, try again" in pending
    assert "2024-05-14 11:00" in pending  # next attempt, local time (T0 + under 30 s)
    assert "ok@example.net" not in done.stdout  # sent mail is not listed by default
    db.dispose()


def test_json_output_and_status_filter(setup: tuple[Path, Database]) -> None:
    config, db = setup
    items = json.loads(run(config, "--json").stdout)
    assert {(i["status"], i["to"][0], i["attempts"]) for i in items} == {
        ("failed", "bad@example.net", 1),
        ("pending", "slow@example.net", 1),
    }
    failed = next(i for i in items if i["status"] == "failed")
    assert failed["last_error"] == "550 5.1.1 <bad@example.net>: Recipient address rejected"
    assert failed["ticket"] == 1042
    assert failed["subject"] == "Re: Számla 0 [#1042]"
    assert failed["next_attempt_at"] is None
    pending = next(i for i in items if i["status"] == "pending")
    assert datetime.fromisoformat(pending["next_attempt_at"]) - T0 <= timedelta(seconds=30)
    sent = json.loads(run(config, "--status", "sent", "--json").stdout)
    assert [(i["to"], i["sent_at"]) for i in sent] == [(["ok@example.net"], T0.isoformat())]
    assert len(json.loads(run(config, "--status", "all", "--json").stdout)) == 3
    db.dispose()


def test_retry_requeues_a_failed_mail_and_refuses_a_sent_one(
    setup: tuple[Path, Database], smtp_server: SmtpServer
) -> None:
    config, db = setup
    with db.session() as s:
        ids = {r.rcpt_key: r.id for r in s.scalars(select(OutboxMail))}
    done = run(config, "retry", str(ids["bad@example.net"]))
    assert done.exit_code == 0, done.stderr
    assert f"outbox {ids['bad@example.net']}: queued for a new attempt" in done.stdout
    with db.session() as s:
        row = s.get_one(OutboxMail, ids["bad@example.net"])
        assert (row.status, row.attempts) == ("pending", 0)
    refused = run(config, "retry", str(ids["ok@example.net"]))
    assert refused.exit_code == 2
    assert "already sent" in refused.stderr
    missing = run(config, "retry", "9999")
    assert missing.exit_code == 2
    assert "no such mail" in missing.stderr
    # the requeued mail now goes out
    sender = SmtpSender("127.0.0.1", smtp_server.port, security="none", timeout=5)
    clock = FixedClock(datetime.now(UTC) + timedelta(minutes=1))
    asyncio.run(Dispatcher(db, sender, clock=clock).run_once())
    with db.session() as s:
        assert s.get_one(OutboxMail, ids["bad@example.net"]).status == "sent"
    db.dispose()


def test_empty_outbox(tmp_path: Path) -> None:
    config = tmp_path / "triage.toml"
    config.write_text(CONFIG.format(port=2525), encoding="utf-8")
    missing = run(config)
    assert missing.exit_code == 2  # no database yet: not silently an empty one
    assert "triage init" in missing.stderr
    Database.open(load_config(config).database_url).dispose()
    done = run(config)
    assert done.exit_code == 0, done.stderr
    assert "no pending or failed mail in the outbox" in done.stdout


def test_outbox_summary_for_the_status_command(setup: tuple[Path, Database]) -> None:
    _config, db = setup
    with db.session() as s:
        summary = outbox_summary(s)
    assert (summary.pending, summary.failed, summary.sent, summary.retrying) == (1, 1, 1, 1)
    assert summary.oldest_pending_at == T0
    db.dispose()
