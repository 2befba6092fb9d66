"""The database: migrations, constraints and time zones on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from alembic.util.exc import CommandError
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError, StatementError

from triage.store import Database
from triage.store.db import alembic_config, shipped_head
from triage.store.models import Folder, Message


def _message(folder: Folder, uid: int, **extra: object) -> Message:
    now = datetime.now(UTC)
    return Message(
        folder_id=folder.id,
        uidvalidity=folder.uidvalidity,
        uid=uid,
        source="imap",
        direction="in",
        message_id=f"<m{uid}@example.test>",
        raw_sha256="0" * 64,
        raw=b"Subject: x\r\n\r\nbody",
        raw_size=18,
        received_at=now,
        **extra,
    )


def test_migrations_match_the_models(database: Database) -> None:
    # alembic's check compares the migrated schema with the models: no drift allowed
    cfg = alembic_config(database.engine)
    try:
        command.check(cfg)
    except CommandError as exc:  # pragma: no cover - the failure message is the diff
        pytest.fail(f"models and migrations differ: {exc}")
    head = ScriptDirectory.from_config(cfg).get_current_head()
    assert database.current_revision() == head
    assert database.migrate() == []


def test_the_shipped_head_is_read_from_file_names_as_alembic_reads_it() -> None:
    # check_schema (every command) takes the head from the file names, not alembic:
    # each NNNN_*.py must hold revision "NNNN" following "NNNN - 1", and the highest wins
    script = ScriptDirectory.from_config(alembic_config())
    assert shipped_head() == script.get_current_head()
    for revision in script.walk_revisions():
        assert Path(revision.path).name.startswith(f"{revision.revision}_")
        if revision.down_revision is not None:
            assert int(str(revision.down_revision)) == int(revision.revision) - 1


def test_message_uid_is_unique_per_folder_and_uidvalidity(database: Database) -> None:
    with database.session() as s:
        folder = Folder(name="INBOX", uidvalidity=7, last_uid=0)
        s.add(folder)
        s.flush()
        s.add(_message(folder, 1))
    with pytest.raises(IntegrityError), database.session() as s:
        folder = s.scalars(select(Folder)).one()
        s.add(_message(folder, 1))
    with database.session() as s:
        folder = s.scalars(select(Folder)).one()
        folder.uidvalidity = 8
        s.add(_message(folder, 1))  # same UID under a new UIDVALIDITY is a new message
    with database.session() as s:
        assert len(s.scalars(select(Message)).all()) == 2


def test_datetimes_come_back_aware_in_utc(database: Database) -> None:
    budapest = timezone(timedelta(hours=1))
    at = datetime(2026, 3, 2, 9, 30, tzinfo=budapest)
    with database.session() as s:
        s.add(Folder(name="INBOX", last_poll_at=at))
    with database.session() as s:
        folder = s.scalars(select(Folder)).one()
        assert folder.last_poll_at == at
        assert folder.last_poll_at is not None
        assert folder.last_poll_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(database: Database) -> None:
    with pytest.raises(StatementError, match="naive datetime"), database.session() as s:
        s.add(Folder(name="INBOX", last_poll_at=datetime(2026, 1, 1)))  # noqa: DTZ001 - on purpose
        s.flush()


def test_failed_transaction_rolls_back_everything(database: Database) -> None:
    class Boom(Exception):
        pass

    with pytest.raises(Boom), database.session() as s:
        s.add(Folder(name="A"))
        s.flush()
        raise Boom
    with database.session() as s:
        assert s.scalars(select(Folder)).all() == []


def test_sqlite_pragmas(sqlite_url: str) -> None:
    db = Database.open(sqlite_url)
    with db.engine.connect() as conn:
        assert conn.execute(text("pragma journal_mode")).scalar() == "wal"
        assert conn.execute(text("pragma foreign_keys")).scalar() == 1
    with pytest.raises(IntegrityError), db.session() as s:
        s.execute(
            text(
                "insert into messages (folder_id, source, direction, message_id, raw_sha256, raw,"
                " raw_size, received_at, from_addr, from_name, to_addrs, cc_addrs, reply_to,"
                " subject, body_text, quoted_text, signature, attachments, in_reply_to,"
                ' "references", language, kind, list_id, parse_status, parse_error,'
                " charset_fallback, body_missing, created_at, message_id_synthetic)"
                " values (999, 'imap', 'in', '<x>', 'h', x'00', 1, '2026-01-01', '', '', '[]',"
                " '[]', '[]', '', '', '', '', '[]', '', '[]', '', 'normal', '', 'ok', '', 0, 0,"
                " '2026-01-01', 0)"
            )
        )
    db.dispose()


def test_read_session_does_not_block_writers(sqlite_url: str) -> None:
    db = Database.open(sqlite_url)
    other = Database.open(sqlite_url, migrate=False)
    # a short busy timeout on the writer: if the reader held the write lock, it would fail
    with other.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA busy_timeout=200")
        conn.rollback()
    with db.read_session() as reader:
        assert reader.scalars(select(Folder)).all() == []
        with other.session() as writer:
            writer.execute(text("PRAGMA busy_timeout=200"))
            writer.add(Folder(name="INBOX"))
        assert reader.scalars(select(Folder)).all() == []  # a snapshot: writes after it unseen
    with db.read_session() as reader:
        assert [f.name for f in reader.scalars(select(Folder))] == ["INBOX"]
        reader.add(Folder(name="ignored"))
        reader.flush()
    with db.read_session() as reader:
        assert [f.name for f in reader.scalars(select(Folder))] == ["INBOX"]  # rolled back
    db.dispose()
    other.dispose()
