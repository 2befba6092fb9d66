"""after_ingest on the real Dovecot: keep, add a keyword, or move (MOVE or COPY+UID EXPUNGE)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select
from structlog.testing import capture_logs
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import append_many, message, settings_for

from triage.imap import ImapConnector, ImapMailbox, WatchedMailbox
from triage.services.intake import Poller
from triage.store import Database
from triage.store.models import Folder, Message

pytestmark = pytest.mark.imap


@pytest.fixture
def db(sqlite_url: str) -> Database:
    return Database.open(sqlite_url)


def _fill(dovecot: Dovecot, account: ImapAccount, count: int = 3) -> None:
    c = dovecot.client(account)
    append_many(c, [message(n) for n in range(count)])
    if not c.folder_exists("Processed"):
        c.create_folder("Processed")
    c.logout()


def _flags(dovecot: Dovecot, account: ImapAccount, folder: str = "INBOX") -> dict[int, set[bytes]]:
    c = dovecot.client(account)
    try:
        c.select_folder(folder, readonly=True)
        return {uid: set(f) for uid, f in c.get_flags(c.search(["ALL"])).items()}
    finally:
        c.logout()


def _stored(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Message)) or 0)


def test_keep_leaves_the_mail_as_it_was(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    _fill(dovecot, imap_account)
    Poller(settings_for(imap_account, sqlite_url, tmp_path), db).poll_once()
    assert _stored(db) == 3
    assert _flags(dovecot, imap_account) == {1: set(), 2: set(), 3: set()}


def test_keyword_is_added_after_commit_and_seen_stays_unset(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    _fill(dovecot, imap_account)
    settings = settings_for(imap_account, sqlite_url, tmp_path, after_ingest="keyword")
    Poller(settings, db).poll_once()
    assert _stored(db) == 3
    assert _flags(dovecot, imap_account) == {
        1: {b"$Triaged"},
        2: {b"$Triaged"},
        3: {b"$Triaged"},
    }


def test_move_uses_move_and_empties_the_folder(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    _fill(dovecot, imap_account)
    settings = settings_for(
        imap_account, sqlite_url, tmp_path, after_ingest="move", move_to="Processed"
    )
    Poller(settings, db).poll_once()
    assert _stored(db) == 3
    assert _flags(dovecot, imap_account) == {}
    assert len(_flags(dovecot, imap_account, "Processed")) == 3
    [again] = Poller(settings, db).poll_once()
    assert again.report is not None
    assert again.report.handled == 0
    assert _stored(db) == 3


def test_move_without_the_move_capability_copies_deletes_and_uid_expunges(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    _fill(dovecot, imap_account)
    settings = settings_for(
        imap_account, sqlite_url, tmp_path, after_ingest="move", move_to="Processed"
    )
    assert settings.imap is not None
    connector = ImapConnector(settings.imap)
    calls: list[str] = []

    def open_without_move() -> WatchedMailbox:
        mailbox = ImapMailbox.open(connector)
        caps = frozenset(c.decode() for c in mailbox._client.capabilities()) - {"MOVE"}
        mailbox._capabilities = caps  # a server without RFC 6851 MOVE
        client = mailbox._client
        for name in ("move", "copy", "uid_expunge"):
            real = getattr(client, name)

            def spy(*args: object, _real: object = real, _name: str = name) -> object:
                calls.append(_name)
                return _real(*args)  # type: ignore[operator]

            setattr(client, name, spy)
        return mailbox

    Poller(settings, db, open_mailbox=open_without_move).poll_once()
    assert calls == ["copy", "uid_expunge"]
    assert _stored(db) == 3
    assert _flags(dovecot, imap_account) == {}
    moved = _flags(dovecot, imap_account, "Processed")
    assert len(moved) == 3
    assert all(b"\\Deleted" not in f for f in moved.values())


def test_an_action_missed_by_a_crash_is_applied_at_the_next_connection(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    _fill(dovecot, imap_account)
    # stored with keep (as if the process died between the commit and the STORE)
    Poller(settings_for(imap_account, sqlite_url, tmp_path), db).poll_once()
    assert _flags(dovecot, imap_account) == {1: set(), 2: set(), 3: set()}
    settings = settings_for(imap_account, sqlite_url, tmp_path, after_ingest="keyword")
    with capture_logs() as logs:
        [result] = Poller(settings, db).poll_once()
    assert result.report is not None
    assert result.report.handled == 0
    assert all(f == {b"$Triaged"} for f in _flags(dovecot, imap_account).values())
    assert any(e["event"] == "after_ingest_resumed" and e["count"] == 3 for e in logs)


def test_a_refused_move_does_not_stop_ingestion(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    _fill(dovecot, imap_account)
    settings = settings_for(
        imap_account, sqlite_url, tmp_path, after_ingest="move", move_to="No/Such/Folder"
    )
    with capture_logs() as logs:
        [result] = Poller(settings, db).poll_once()
    assert result.report is not None
    assert result.report.stored == 3
    assert len(_flags(dovecot, imap_account)) == 3  # not moved, not lost
    failed = [e for e in logs if e["event"] == "after_ingest_failed"]
    assert failed
    assert "does not exist" in failed[0]["error"]
    with db.session() as s:
        folder = s.scalars(select(Folder)).one()
        assert folder.last_poll_at is not None  # the pass itself went through
        assert folder.last_error.startswith("after_ingest: ")  # shown by triage status
