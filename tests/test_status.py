"""`triage status`: folders, backlog, breaches, outbox, models; exit 1 when unhealthy."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import Result
from sqlalchemy import event
from support.cli import run_triage

from triage.clock import utcnow
from triage.config import load_config
from triage.services.status import read_status
from triage.store import Database
from triage.store.models import Folder, OutboxMail, Ticket

ROOT = Path(__file__).resolve().parents[1]


def setup(tmp_path: Path) -> tuple[Path, Database]:
    config = tmp_path / "triage.toml"
    shutil.copy(ROOT / "config.example.toml", config)
    settings = load_config(config)
    return config, Database.open(settings.database_url)


def status(config: Path, *args: str) -> Result:
    return run_triage("--config", str(config), "status", *args)


def test_healthy_installation(tmp_path: Path) -> None:
    config, db = setup(tmp_path)
    now = utcnow()
    with db.session() as s:
        s.add(
            Folder(
                name="INBOX", uidvalidity=7, last_uid=42, last_poll_at=now - timedelta(minutes=1)
            )
        )
        s.add(
            Ticket(
                queue="billing", priority="normal", status="new", opened_at=now - timedelta(days=9),
                awaiting_since=now - timedelta(days=9), first_response_due=now - timedelta(days=8),
            )
        )  # fmt: skip
    done = status(config)
    assert done.exit_code == 0, done.stdout + done.stderr
    assert "INBOX: last poll 1m ago" in done.stdout
    assert "last UID 42" in done.stdout
    assert "Backlog: 1 tickets await an answer" in done.stdout
    assert "Breached: 1 open tickets past a deadline" in done.stdout
    assert "billing 1" in done.stdout
    data = json.loads(status(config, "--json").stdout)
    assert data["healthy"] is True
    assert data["folders"][0]["last_uid"] == 42
    assert data["breached"] == 1
    db.dispose()


def test_stale_folder_and_failed_mail_make_it_unhealthy(tmp_path: Path) -> None:
    config, db = setup(tmp_path)
    now = utcnow()
    with db.session() as s:
        s.add(
            Folder(
                name="INBOX", uidvalidity=7, last_uid=3, last_poll_at=now - timedelta(minutes=11),
                last_error="connection refused",
            )
        )  # fmt: skip
        s.add(
            OutboxMail(
                kind="ack", message_id="<a@x>", mail_from="inbox@example.com",
                rcpt_to=["c@client.example"], raw=b"x", status="failed",
                last_error="550 no such user",
            )
        )  # fmt: skip
    done = status(config)
    assert done.exit_code == 1
    assert "STALE" in done.stdout
    assert "last error: connection refused" in done.stdout
    assert "1 failed" in done.stdout
    assert "Health: ATTENTION" in done.stdout
    db.dispose()


def test_read_status_counts(tmp_path: Path) -> None:
    _config, db = setup(tmp_path)
    now = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)
    with db.session() as s:
        for queue, st in (("billing", "new"), ("billing", "waiting"), ("records", "solved")):
            s.add(Ticket(queue=queue, priority="normal", status=st, opened_at=now))
    with db.read_session() as s:
        state = read_status(s, now)
    assert state.open_by_queue == {"billing": 2}
    assert state.folders == []
    assert state.models == {"queue": None, "priority": None}
    db.dispose()


def test_a_watched_folder_never_polled_is_unhealthy(tmp_path: Path) -> None:
    config, db = setup(tmp_path)  # config.example.toml watches INBOX
    done = status(config)
    assert done.exit_code == 1
    assert "INBOX: last poll never STALE" in done.stdout
    assert "Model: none" in done.stdout
    db.dispose()


def test_mail_stuck_in_the_outbox_makes_it_unhealthy_with_the_servers_answer(
    tmp_path: Path,
) -> None:
    """A wrong SMTP password (535) is retried, but status must not call that healthy."""
    config, db = setup(tmp_path)
    now = utcnow()
    with db.session() as s:
        s.add(Folder(name="INBOX", uidvalidity=7, last_uid=3, last_poll_at=now))
        s.add(
            OutboxMail(
                kind="ack", message_id="<fresh@x>", mail_from="inbox@example.com",
                rcpt_to=["c@client.example"], raw=b"x", status="pending",
                created_at=now - timedelta(minutes=2),
            )
        )  # fmt: skip
    assert status(config).exit_code == 0  # pending for 2 minutes: normal
    with db.session() as s:
        s.add(
            OutboxMail(
                kind="ack", message_id="<old@x>", mail_from="inbox@example.com",
                rcpt_to=["d@client.example"], raw=b"x", status="pending", attempts=4,
                created_at=now - timedelta(minutes=25),
                last_error="535 5.7.8 Authentication credentials invalid",
            )
        )  # fmt: skip
    done = status(config)
    assert done.exit_code == 1
    assert "STUCK: the oldest pending mail was queued 25m ago" in done.stdout
    assert "last error: 535 5.7.8 Authentication credentials invalid" in done.stdout
    assert json.loads(status(config, "--json").stdout)["outbox_stuck"] is True
    db.dispose()


def test_every_ticket_query_of_status_is_served_by_an_index(tmp_path: Path) -> None:
    # issue 13.8: at 100,000 tickets `triage status` read every ticket row twice (the
    # open tickets per queue, the backlog awaiting an answer); each of its queries on
    # tickets is now answered by a covering index (EXPLAIN QUERY PLAN: no SCAN)
    _config, db = setup(tmp_path)
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if "FROM tickets" in statement and not statement.startswith("EXPLAIN"):
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.read_session() as session:
            read_status(session, utcnow())
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert len(seen) >= 3
    with db.engine.connect() as conn:
        for statement in seen:
            params = tuple(["new"] * statement.count("?"))
            plan = " ".join(
                str(row[-1])
                for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", params)
            )
            assert "SCAN tickets" not in plan, (statement, plan)
            if "awaiting_since" in statement or "GROUP BY tickets.queue" in statement:
                assert "COVERING INDEX" in plan, (statement, plan)
