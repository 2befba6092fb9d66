"""The CLI commands the ticket desk added: note, reopen, wait --until, move --priority.

In-process (click's CliRunner through ``triage.cli.main.main``); the real clock,
so deadlines are set relative to it.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from support.cli import run_triage
from support.tickets import make_policy, store_message, write_config

from triage.store import Database
from triage.store.models import Mention, OutboxMail, Ticket, TrainingLabel
from triage.tickets import open_ticket

POLICY = make_policy()


@pytest.fixture
def office(tmp_path: Path) -> Iterator[tuple[dict[str, str], Database, int]]:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    db = Database.open(url)
    config = write_config(tmp_path / "triage.toml", url)
    now = datetime.now(UTC)
    with db.session() as s:
        m = store_message(
            s, message_id="<c1@client.example>", received_at=now - timedelta(minutes=5)
        )
        ref = open_ticket(
            s, m, policy=POLICY, queue="billing", priority="normal", decided_by="model", now=now
        ).ref
    try:
        yield {"TRIAGE_CONFIG": str(config)}, db, ref or 0
    finally:
        db.dispose()


def test_note_is_kept_inside_and_tells_who_is_mentioned(office) -> None:
    env, db, ref = office
    done = run_triage("note", str(ref), "@bela please call the client", "--as", "anna", env=env)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == f"note added to #{ref}; bela will be told"
    shown = run_triage("show", str(ref), env=env)
    assert "Internal notes (1, newest first; never mailed):" in shown.stdout
    assert "@bela please call the client" in shown.stdout
    assert "anna: note_written" in shown.stdout
    with db.read_session() as s:
        assert s.scalars(select(Mention.assistant)).all() == ["bela"]
        assert s.scalars(select(OutboxMail)).all() == []
    unknown = run_triage("note", str(ref), "@bela and @nobody, see above", "--as", "anna", env=env)
    assert unknown.exit_code == 0, unknown.stderr
    assert unknown.stdout.strip() == (
        f"note added to #{ref}; bela will be told; @nobody: no such assistant, nobody was told"
    )


def test_wait_until_and_reopen(office) -> None:
    env, db, ref = office
    when = (datetime.now(UTC) + timedelta(days=2)).strftime("%Y-%m-%d %H:%M")
    done = run_triage("wait", str(ref), "--until", when, "--as", "anna", env=env)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == f"#{ref} is waiting until {when}"
    assert "waiting until" in run_triage("show", str(ref), env=env).stdout
    bad = run_triage("wait", str(ref), "--until", "next week", "--as", "anna", env=env)
    assert bad.exit_code == 2
    assert "is not a date and time" in bad.stderr
    assert run_triage("done", str(ref), "--as", "anna", env=env).exit_code == 0
    again = run_triage("reopen", str(ref), "--as", "anna", env=env)
    assert again.exit_code == 0, again.stderr
    assert again.stdout.strip() == f"#{ref} reopened"
    with db.read_session() as s:
        ticket = s.scalars(select(Ticket)).one()
        assert (ticket.status, ticket.wait_until) == ("new", None)


def test_move_priority_only(office) -> None:
    env, db, ref = office
    done = run_triage("move", str(ref), "--priority", "urgent", "--as", "anna", env=env)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == f"#{ref} moved to priority urgent"
    none = run_triage("move", str(ref), "--as", "anna", env=env)
    assert none.exit_code == 2
    assert "needs a queue or a priority" in none.stderr
    with db.read_session() as s:
        label = s.scalars(select(TrainingLabel)).one()
        assert (label.queue, label.priority) == ("billing", "urgent")


def test_a_solved_ticket_cannot_be_claimed(office) -> None:
    env, _db, ref = office
    assert run_triage("done", str(ref), "--as", "anna", env=env).exit_code == 0
    done = run_triage("claim", str(ref), "--as", "bela", env=env)
    assert done.exit_code == 2
    assert "is solved: there is nothing to claim" in done.stderr
