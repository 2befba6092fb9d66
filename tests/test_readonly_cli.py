"""Read-only commands never take the SQLite write lock; only init, run and demo migrate.

Issue 13.7: every command used to run the migration check through a write
transaction, so `triage queue --json` waited behind the daemon's writes (28 s) and
failed when the lock outlived the busy timeout. Here another connection holds the
write lock for the whole command (as a long daemon transaction would), with the
busy timeout cut to 1.5 s: a command that asked for the lock would fail with
"database is locked"; a read-only one answers.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from click.testing import CliRunner
from support.tickets import write_config

from triage.cli.main import main
from triage.clock import utcnow
from triage.store import Database
from triage.store import db as store_db
from triage.store.db import alembic_config, make_engine
from triage.store.models import OutboxMail, Ticket

RULES = """
[[rule]]
name = "invoices"
when = { field = "subject", contains = "invoice" }
then = { queue = "billing" }
"""


def run(config: Path, *args: str) -> tuple[int, str]:
    runner = CliRunner()
    with runner.isolation() as (out, err, *_):
        code = main(["--config", str(config), *args])
    return code, out.getvalue().decode() + err.getvalue().decode()


@pytest.fixture
def installation(tmp_path: Path) -> tuple[Path, Path]:
    """A config and a migrated database holding one open ticket and one pending mail."""
    path = tmp_path / "t.db"
    config = write_config(tmp_path / "triage.toml", f"sqlite:///{path}")
    (tmp_path / "rules.toml").write_text(RULES)
    db = Database.open(f"sqlite:///{path}")
    now = utcnow()
    with db.session() as s:
        ticket = Ticket(
            ref=1001, queue="billing", priority="normal", status="new", subject="Invoice",
            client_addr="client@example.com", opened_at=now - timedelta(hours=1),
            first_response_due=now + timedelta(hours=3),
        )  # fmt: skip
        s.add(ticket)
        s.flush()
        s.add(
            OutboxMail(
                kind="ack", ticket_id=ticket.id, message_id="<a@office.example>",
                mail_from="inbox@office.example", rcpt_to=["client@example.com"],
                raw=b"Subject: x\r\n\r\nx\r\n",
            )
        )  # fmt: skip
    db.dispose()
    return config, path


@pytest.fixture
def write_lock_held(
    installation: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch
) -> Iterator[None]:
    """Another connection holds the write lock throughout; lock waits give up after 1.5 s."""
    monkeypatch.setattr(store_db, "SQLITE_BUSY_TIMEOUT_MS", 1500)
    holder = sqlite3.connect(installation[1], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("UPDATE tickets SET subject = subject")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize(
    "args",
    [
        ("queue",),
        ("queue", "--json"),
        ("status",),
        ("status", "--json"),
        ("show", "1001"),
        ("outbox",),
        ("outbox", "--json"),
        ("rules", "test", "--rules", "rules.toml"),
    ],
    ids=" ".join,
)
def test_read_only_command_answers_while_a_writer_holds_the_lock(
    installation: tuple[Path, Path], write_lock_held: None, args: tuple[str, ...]
) -> None:
    config, _ = installation
    rest = [str(config.parent / a) if a.endswith(".toml") else a for a in args]
    code, out = run(config, *rest)
    assert "locked" not in out, out
    assert code in (0, 1), out  # status exits 1 when unhealthy (no folder polled yet)
    if args[0] in {"queue", "show"}:
        assert "1001" in out


def test_a_change_still_waits_for_the_lock(
    installation: tuple[Path, Path], write_lock_held: None
) -> None:
    """The other side of the test above: a command that writes does wait (and gives up)."""
    config, _ = installation
    code, out = run(config, "claim", "1001", "--as", "anna")
    assert code != 0
    assert "locked" in out


def _at_revision(path: Path, revision: str) -> None:
    engine = make_engine(f"sqlite:///{path}")
    command.upgrade(alembic_config(engine), revision)
    engine.dispose()


def test_a_schema_behind_is_a_clear_error_and_not_migrated(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    config = write_config(tmp_path / "triage.toml", f"sqlite:///{path}")
    _at_revision(path, "0003")
    for args in (("queue", "--json"), ("status",), ("outbox",)):
        code, out = run(config, *args)
        assert code != 0, out
        assert "schema 0003" in out
        assert "run `triage init`" in out
    assert Database(make_engine(f"sqlite:///{path}")).current_revision() == "0003"
    code, out = run(config, "init")
    assert code == 0, out
    assert "applied migrations:" in out
    code, out = run(config, "queue", "--json")
    assert code == 0, out


def test_an_empty_database_names_init(tmp_path: Path) -> None:
    path = tmp_path / "t.db"
    config = write_config(tmp_path / "triage.toml", f"sqlite:///{path}")
    sqlite3.connect(path).close()
    code, out = run(config, "queue")
    assert code != 0
    assert "no triage schema yet: run `triage init`" in out
