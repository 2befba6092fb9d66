"""Batched ingestion (issue 18.1): many messages per transaction, still exactly once.

- `triage poll --once` is killed with SIGKILL while a batch's transaction is open
  with rows written in it (PostgreSQL: the poller's backend holds the lock an
  INSERT into ``messages`` takes until its transaction ends; SQLite: it holds the
  database's write lock), on real Dovecot. What is committed at that moment is
  exactly the UIDs 1..high-water mark (no half batch, no row above the mark), and
  the restart stores the rest exactly once without fetching anything twice.
- A batch really is one transaction: a pass over 30 messages commits a handful of
  times, not 30, and the mark is written once per transaction.
- One message failing in its savepoint spoils nothing else of the batch.
- The look-up run for every new message that scanned the whole messages table
  (EXPLAIN) has an index (issue 18.2).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import append_many, imap_table, message

from triage.config import Settings
from triage.domain import Address, InboundMessage
from triage.outbox.enqueue import earlier_repeat
from triage.services.intake import Poller
from triage.store import Database
from triage.store.models import Folder, Message

TOTAL = 600
ENTRY = "import sys; from triage.cli.main import main; sys.exit(main(sys.argv[1:]))"


def _write_config(path: Path, db_url: str, account: ImapAccount, tmp_path: Path) -> None:
    imap = imap_table(account, tmp_path, batch_size=200)
    lines = ["[database]", f"url = {json.dumps(db_url)}", "", "[imap]"]
    lines += [f"{key} = {json.dumps(value)}" for key, value in imap.items()]
    lines += ["", "[logging]", 'format = "json"', 'level = "warning"']
    path.write_text("\n".join(lines) + "\n")


def _poll(config: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", ENTRY, "--config", str(config), "poll", "--once"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def _committed(db: Database) -> tuple[list[int], int]:
    """(UIDs stored, the folder's high-water mark) as committed now."""
    with db.read_session() as s:
        uids = sorted(u for u in s.scalars(select(Message.uid)).all() if u is not None)
        mark = s.scalar(select(Folder.last_uid)) or 0
    return uids, int(mark)


def _batch_open(db_url: str, db: Database) -> bool:
    """True while another connection is inside a write transaction (mid-batch)."""
    if db_url.startswith("sqlite"):
        # BEGIN IMMEDIATE fails at once while the poller holds the write lock
        probe = sqlite3.connect(db_url.removeprefix("sqlite:///"), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
        except sqlite3.OperationalError:
            return True
        finally:
            probe.close()
        return False
    with db.engine.connect() as conn:
        # an INSERT into messages holds ROW EXCLUSIVE on it until its transaction ends
        held = conn.execute(
            text(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'relation'"
                " AND relation = 'messages'::regclass AND mode = 'RowExclusiveLock'"
                " AND granted AND pid <> pg_backend_pid()"
            )
        ).scalar()
    return bool(held)


@pytest.mark.imap
@pytest.mark.slow
def test_sigkill_mid_batch_keeps_whole_batches_only_and_the_restart_stores_the_rest_once(
    dovecot: Dovecot, imap_account: ImapAccount, db_url: str, tmp_path: Path
) -> None:
    raws = [message(n, body=f"Body {n}. " + "x" * (n % 50) * 40) for n in range(1, TOTAL + 1)]
    client = dovecot.client(imap_account)
    append_many(client, raws)
    client.logout()
    config = tmp_path / "triage.toml"
    _write_config(config, db_url, imap_account, tmp_path)
    db = Database.open(db_url)
    try:
        first = _poll(config)
        deadline = time.monotonic() + 120
        while True:
            assert time.monotonic() < deadline, "no batch caught open within two minutes"
            if first.poll() is not None:
                out, err = first.communicate()
                pytest.fail(f"the poller ended before it could be killed: {out}\n{err}")
            uids, _ = _committed(db)
            if len(uids) >= 30 and _batch_open(db_url, db):
                first.send_signal(signal.SIGKILL)
                first.communicate(timeout=30)
                break
            time.sleep(0.002)
        assert first.returncode == -signal.SIGKILL

        uids, mark = _committed(db)
        assert 0 < len(uids) < TOTAL, "the kill came too late to test anything"
        # only whole batches are visible: the UIDs up to the mark, nothing above it
        assert uids == list(range(1, mark + 1))

        last = _poll(config)
        out, err = last.communicate(timeout=180)
        assert last.returncode == 0, err
        counts = re.search(
            r"INBOX: (\d+) stored, (\d+) stored with errors, (\d+) already stored", out
        )
        assert counts, out
        assert [int(g) for g in counts.groups()] == [TOTAL - mark, 0, 0]

        with db.read_session() as s:
            rows = s.execute(select(Message.uid, Message.raw_sha256)).all()
            last_uid = s.scalar(select(Folder.last_uid))
        assert sorted(uid for uid, _ in rows) == list(range(1, TOTAL + 1))
        assert {sha for _, sha in rows} == {hashlib.sha256(r).hexdigest() for r in raws}
        assert last_uid == TOTAL
    finally:
        db.dispose()


def _settings(account: ImapAccount, db_url: str, tmp_path: Path, **imap: Any) -> Settings:
    return Settings.model_validate(
        {"database": {"url": db_url}, "imap": imap_table(account, tmp_path, **imap)}
    )


@pytest.mark.imap
def test_a_fetched_batch_commits_in_one_transaction_with_one_mark_update(
    dovecot: Dovecot, imap_account: ImapAccount, database: Database, db_url: str, tmp_path: Path
) -> None:
    client = dovecot.client(imap_account)
    append_many(client, [message(n) for n in range(1, 31)])
    client.logout()
    poller = Poller(_settings(imap_account, db_url, tmp_path, batch_size=200), database)
    poller.intake.folder_id("INBOX")
    commits: list[str] = []
    marks: list[str] = []
    savepoints: list[str] = []

    def on_commit(_conn: Any) -> None:
        commits.append("commit")

    def on_statement(*args: Any) -> None:
        sql = str(args[2])
        if sql.startswith("SAVEPOINT"):
            savepoints.append(sql)
        if sql.startswith("UPDATE folders SET") and "last_uid" in sql.split("WHERE", maxsplit=1)[0]:
            marks.append(sql)

    event.listen(database.engine, "commit", on_commit)
    event.listen(database.engine, "before_cursor_execute", on_statement)
    try:
        [result] = poller.poll_once()
    finally:
        event.remove(database.engine, "commit", on_commit)
        event.remove(database.engine, "before_cursor_execute", on_statement)
    assert result.report is not None
    assert result.report.stored == 30
    # begin_pass (a read), the messages (a transaction per <= 100 ms, usually one),
    # end_pass: far fewer commits than messages
    stored_transactions = len(commits) - 2
    assert 1 <= stored_transactions <= 10, commits
    # one mark update per message transaction, plus end_pass's
    assert len(marks) <= stored_transactions + 1
    # no message failed: no savepoint per message (issue 18.2; taken only on a retry)
    assert savepoints == []
    with database.read_session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 30
        assert s.scalar(select(Folder.last_uid)) == 30


@pytest.mark.imap
def test_one_failing_message_in_a_batch_is_stored_raw_and_the_rest_of_the_batch_commits(
    dovecot: Dovecot, imap_account: ImapAccount, database: Database, db_url: str, tmp_path: Path
) -> None:
    class Boom:
        def process(self, session: Any, _row: Message, message: InboundMessage) -> None:
            session.execute(text("UPDATE folders SET last_error = 'touched by the pipeline'"))
            if message.subject == "boom" and message.parse_status == "ok":
                raise RuntimeError("the pipeline failed on this message")

    client = dovecot.client(imap_account)
    append_many(
        client, [message(n, subject="boom" if n == 5 else f"fine {n}") for n in range(1, 11)]
    )
    client.logout()
    settings = _settings(imap_account, db_url, tmp_path, batch_size=200)
    [result] = Poller(settings, database, pipeline=Boom()).poll_once()
    assert result.report is not None
    assert (result.report.stored, result.report.errors) == (9, 1)
    with database.read_session() as s:
        rows = s.execute(select(Message.uid, Message.parse_status, Message.parse_error)).all()
        last_uid = s.scalar(select(Folder.last_uid))
    statuses = {uid: status for uid, status, _ in rows}
    assert statuses == {n: "error" if n == 5 else "ok" for n in range(1, 11)}
    assert next(e for uid, _, e in rows if uid == 5).startswith("RuntimeError: the pipeline")
    assert last_uid == 10


def test_the_repeat_check_on_every_new_message_uses_an_index_not_a_scan(
    database: Database, db_url: str
) -> None:
    """EXPLAIN of the acknowledgment policy's look-up of the sender's recent mail
    (run for each new message): an index search on both databases (migration 0014)."""
    seen: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "lower(messages.from_addr)" in statement and "body_text" in statement:
            seen.append((statement, parameters))

    mail = InboundMessage(
        message_id="<a@example.test>",
        subject="Invoice 7",
        body_text="Please look at invoice 7.",
        received_at=datetime(2026, 12, 3, 9, 0, tzinfo=UTC),
        from_=Address("Ann", "Ann@Example.test"),
    )
    event.listen(database.engine, "before_cursor_execute", record)
    try:
        with database.session() as s:
            earlier_repeat(s, mail, datetime(2026, 12, 2, tzinfo=UTC))
    finally:
        event.remove(database.engine, "before_cursor_execute", record)
    [(statement, parameters)] = seen
    with database.engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        if db_url.startswith("sqlite"):
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
            plan = " ".join(str(row[3]) for row in cursor.fetchall())
            assert "USING INDEX ix_messages_sender_received" in plan, plan
            assert "SCAN messages" not in plan, plan
        else:
            # a tiny table is cheaper to scan: ask whether the index can serve at all
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN " + statement, parameters)
            plan = " ".join(str(row[0]) for row in cursor.fetchall())
            assert "ix_messages_sender_received" in plan, plan
            assert "Seq Scan on messages" not in plan, plan
        cursor.close()
