"""``triage backup`` / ``triage restore``: consistent while the daemon ingests, nothing lost after.

The main test (SQLite and PostgreSQL) runs ``triage run`` as a real process on the
real Dovecot and aiosmtpd while a thread keeps APPENDing client mail, and takes a
backup with the real CLI in the middle of it. The backup is restored into a fresh
database; ``triage queue --json`` and ``triage status --json`` on it must show
exactly the source's tickets as of the backup's high-water mark (every message up
to the restored last UID, none after). Then the daemon is started on the restored
database: it resumes from the restored high-water mark, fetches exactly the mail
that came after the backup, and ends with every message once.
"""

from __future__ import annotations

import collections
import io
import json
import shutil
import stat
import tarfile
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from sqlalchemy import func, select
from support.cli import run_triage
from support.daemonproc import (
    DEFAULT_RULES,
    DaemonProcess,
    daemon_config,
    write_config,
)
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import message
from support.postgres import throwaway_database
from support.smtp import SmtpServer

from triage.backup import make_backup, prune_backups, restore_backup
from triage.config import parse_config
from triage.errors import BackupError
from triage.store import Database
from triage.store.models import Folder, Message, OutboxMail, Ticket


def triage(config: Path, *args: str) -> Result:
    return run_triage("--config", str(config), *args)


def _mail(n: int) -> bytes:
    return message(
        n,
        subject=f"Question {n} about my invoice",
        sender=f"client{n}@example.org",
        date=format_datetime(datetime.now(UTC)),
    )


class Appender(threading.Thread):
    """APPENDs mail numbered from ``first`` to INBOX, one every ``pause`` seconds, until
    :attr:`stop` is set (or ``limit`` mails); :attr:`last` is the last number appended."""

    def __init__(
        self, dovecot: Dovecot, account: ImapAccount, first: int, pause: float, limit: int = 3000
    ) -> None:
        super().__init__(daemon=True)
        self.dovecot, self.account, self.pause = dovecot, account, pause
        self.first, self.limit = first, limit
        self.last = first - 1
        self.stop = threading.Event()
        self.done = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        client = self.dovecot.client(self.account)
        try:
            for n in range(self.first, self.first + self.limit):
                if self.stop.is_set():
                    break
                client.append("INBOX", _mail(n), flags=())
                self.last = n
                time.sleep(self.pause)
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            client.logout()
            self.done.set()


def _count(db: Database, model: Any) -> int:
    with db.read_session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _refs_up_to(db: Database, last_uid: int) -> set[int]:
    """Tickets whose first message has a UID up to ``last_uid``."""
    with db.read_session() as s:
        rows = s.execute(
            select(Ticket.ref, func.min(Message.uid))
            .join(Message, Message.ticket_id == Ticket.id)
            .group_by(Ticket.ref)
        ).all()
    return {int(ref) for ref, uid in rows if uid is not None and uid <= last_uid}


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def two_databases(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A source database and an empty one to restore into, of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'source.db'}", f"sqlite:///{tmp_path / 'restored.db'}"
        return
    source = request.getfixturevalue("pg_url")
    with throwaway_database() as target:
        yield source, target


@pytest.fixture
def opened() -> Iterator[Any]:
    """Open databases by URL; all disposed at the end, whatever happens."""
    dbs: list[Database] = []

    def open_(url: str) -> Database:
        db = Database.open(url)
        dbs.append(db)
        return db

    try:
        yield open_
    finally:
        for db in dbs:
            db.dispose()


@pytest.mark.imap
@pytest.mark.smtp
@pytest.mark.slow
def test_backup_while_ingesting_then_restore_and_resume_loses_nothing(  # noqa: PLR0917 - fixtures
    tmp_path: Path,
    dovecot: Dovecot,
    imap_account: ImapAccount,
    smtp_server: SmtpServer,
    two_databases: tuple[str, str],
    opened: Any,
) -> None:
    source_url, target_url = two_databases
    if "postgresql" in source_url and shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed (apt-get install postgresql-client)")
    rules = tmp_path / "rules" / "office.toml"
    rules.parent.mkdir()
    shutil.copyfile(DEFAULT_RULES, rules)
    source_config = write_config(
        tmp_path / "source.toml",
        daemon_config(
            imap_account, smtp_server.port, source_url, tmp_path, rule_files=[str(rules)]
        ),
    )
    for n in range(1, 11):
        dovecot.append(imap_account, _mail(n))
    source_db = opened(source_url)
    daemon = DaemonProcess(source_config, tmp_path / "source.log")
    appender = Appender(dovecot, imap_account, 11, pause=0.1)
    try:
        daemon.wait_event("daemon_started", 60)
        daemon.wait_for(lambda: _count(source_db, Message) >= 10, 60, "the first mail stored")
        appender.start()
        daemon.wait_for(lambda: _count(source_db, Message) >= 15, 60, "more mail stored")
        done = triage(source_config, "backup", "--to", str(tmp_path / "backups"))
        assert done.exit_code == 0, done.stderr
        assert not appender.done.is_set(), "the backup must be taken while mail still arrives"
        after_backup = appender.last
        daemon.wait_for(lambda: appender.last >= after_backup + 5, 60, "mail after the backup")
        appender.stop.set()
        appender.join(60)
        assert appender.error is None
        total = appender.last
        daemon.wait_for(
            lambda: (
                _count(source_db, Message) == total
                and _count(source_db, Ticket) == total
                and smtp_server.sink.attempts >= total
            ),
            120,
            "all mail stored and acknowledged",
        )
    finally:
        daemon.terminate()
    (archive,) = (tmp_path / "backups").glob("triage-backup-*.tar.gz")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    source_queue = {
        t["ref"]: t for t in json.loads(triage(source_config, "queue", "--json").stdout)
    }

    # restore into the empty database, with the same rules and mailbox
    target_config = write_config(
        tmp_path / "restored.toml",
        daemon_config(
            imap_account, smtp_server.port, target_url, tmp_path, rule_files=[str(rules)]
        ),
    )
    done = triage(target_config, "restore", str(archive))
    assert done.exit_code == 0, done.stderr + done.stdout
    assert "restored:" in done.stdout
    status = json.loads(triage(target_config, "status", "--json").stdout)
    (folder,) = status["folders"]
    backup_uid = folder["last_uid"]
    assert 10 <= backup_uid < total  # taken mid-stream
    restored_db = opened(target_url)
    with restored_db.read_session() as s:
        uids = sorted(u for u in s.scalars(select(Message.uid)) if u is not None)
        outbox = collections.Counter(s.scalars(select(OutboxMail.status)))
    assert uids == list(range(1, backup_uid + 1))  # all up to the high-water mark, none after

    # `triage queue` and `triage status` on the restore = the source at the backup point
    restored_queue = {
        t["ref"]: t for t in json.loads(triage(target_config, "queue", "--json").stdout)
    }
    at_backup = _refs_up_to(source_db, backup_uid)
    assert set(restored_queue) == at_backup
    relative = {"due"}  # "due in 3h 59m": the same due_at, read a minute later
    for ref, ticket in restored_queue.items():
        source_ticket = {k: v for k, v in source_queue[ref].items() if k not in relative}
        assert {k: v for k, v in ticket.items() if k not in relative} == source_ticket
    assert status["awaiting_answer"] == len(at_backup)
    expected_by_queue = collections.Counter(source_queue[r]["queue"] for r in at_backup)
    assert status["open_by_queue"] == dict(expected_by_queue)
    assert status["breached"] == sum(source_queue[r]["breached"] for r in at_backup)
    assert status["outbox"]["pending"] + status["outbox"]["sent"] == sum(outbox.values())
    assert (
        status["models"] == json.loads(triage(source_config, "status", "--json").stdout)["models"]
    )

    # the daemon on the restored database resumes from the restored high-water mark
    resumed = DaemonProcess(target_config, tmp_path / "restored.log")
    try:
        resumed.wait_event("daemon_started", 60)
        resumed.wait_for(
            lambda: _count(restored_db, Message) == total and _count(restored_db, Ticket) == total,
            120,
            "the mail after the backup fetched again",
        )
        time.sleep(1)  # nothing more may arrive
    finally:
        resumed.terminate()
    stored_again = [e for e in resumed.events("message_stored") if e.get("source") == "imap"]
    assert sorted(e["uid"] for e in stored_again) == list(range(backup_uid + 1, total + 1))
    with source_db.read_session() as s:
        source_ids = sorted(s.scalars(select(Message.message_id)))
    with restored_db.read_session() as s:
        restored_ids = sorted(s.scalars(select(Message.message_id)))
        (last_uid,) = s.scalars(select(Folder.last_uid)).all()
    assert restored_ids == source_ids  # every message once: nothing lost, nothing twice
    assert last_uid == total
    final_queue = {t["ref"] for t in json.loads(triage(target_config, "queue", "--json").stdout)}
    assert len(final_queue) == total


# -- the archive and its refusals ---------------------------------------------------------


def _settings(tmp_path: Path, url: str, **extra: Any) -> Any:
    data = {"database": {"url": url}, **extra}
    return parse_config(data, source=str(tmp_path / "triage.toml"), base_dir=tmp_path)


@pytest.fixture
def small_backup(tmp_path: Path) -> tuple[Any, Path]:
    rules = tmp_path / "office.toml"
    shutil.copyfile(DEFAULT_RULES, rules)
    templates = tmp_path / "templates" / "ack"
    templates.mkdir(parents=True)
    (templates / "default.en.j2").write_text("Thanks, {{ name }}.\n", encoding="utf-8")
    (tmp_path / "oauth2-token.json").write_text('{"refresh_token": "secret"}', encoding="utf-8")
    (tmp_path / "triage.toml").write_text("# the operator's config\n", encoding="utf-8")
    settings = _settings(
        tmp_path,
        f"sqlite:///{tmp_path / 'source.db'}",
        routing={"rule_files": [str(rules)]},
        acknowledgments={"templates_dir": "templates"},
        oauth2={"provider": "microsoft", "client_id": "abc"},
    )
    db = Database.open(settings.database_url)
    with db.session() as s:
        s.add(Folder(name="INBOX", uidvalidity=7, last_uid=3, last_error=""))
    db.dispose()
    return settings, make_backup(settings, tmp_path / "backups").path


def test_the_archive_holds_the_database_rules_and_templates_but_no_token(
    small_backup: tuple[Any, Path],
) -> None:
    archive = small_backup[1]
    with tarfile.open(archive) as tar:
        names = sorted(tar.getnames())
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert names == [
        "config/triage.toml",
        "database.sqlite",
        "manifest.json",
        "rules/00-office.toml",
        "templates/ack/default.en.j2",
    ]
    assert manifest["format"] == 1
    assert manifest["database"]["kind"] == "sqlite"
    assert manifest["database"]["counts"]["folders"] == 1
    assert manifest["database"]["revision"]
    assert not any("oauth2" in n or "token" in n for n in names)


def test_restore_refuses_a_database_that_is_not_empty(
    tmp_path: Path, small_backup: tuple[Any, Path]
) -> None:
    settings, archive = small_backup
    with pytest.raises(BackupError, match="is not empty"):
        restore_backup(settings, archive)  # the source itself


def test_restore_refuses_the_other_database_kind(
    tmp_path: Path, small_backup: tuple[Any, Path]
) -> None:
    archive = small_backup[1]
    pg = _settings(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:1/none")
    with pytest.raises(BackupError, match=r"is a sqlite backup; database\.url is postgresql"):
        restore_backup(pg, archive)


def test_restore_refuses_a_damaged_or_foreign_archive(
    tmp_path: Path, small_backup: tuple[Any, Path]
) -> None:
    archive = small_backup[1]
    target = _settings(tmp_path, f"sqlite:///{tmp_path / 'new.db'}")
    # a member changed after the backup: the checksum says so
    work = tmp_path / "unpacked"
    with tarfile.open(archive) as tar:
        tar.extractall(work, filter="data")
    (work / "rules" / "00-office.toml").write_text("# edited\n", encoding="utf-8")
    damaged = tmp_path / "damaged.tar.gz"
    with tarfile.open(damaged, "w:gz") as tar:
        for path in sorted(work.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=path.relative_to(work).as_posix())
    with pytest.raises(BackupError, match=r"00-office\.toml is missing or damaged"):
        restore_backup(target, damaged)
    # a member that would land outside the extraction directory
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../outside.txt")
        info.size = 1
        tar.addfile(info, fileobj=io.BytesIO(b"x"))
    with pytest.raises(BackupError, match="not a readable triage backup"):
        restore_backup(target, evil)
    assert not (tmp_path / "outside.txt").exists()
    not_tar = tmp_path / "notes.txt"
    not_tar.write_text("hello", encoding="utf-8")
    with pytest.raises(BackupError, match="not a readable triage backup"):
        restore_backup(target, not_tar)
    assert not (tmp_path / "new.db").exists()


def test_restore_writes_missing_files_and_keeps_changed_ones(
    tmp_path: Path, small_backup: tuple[Any, Path]
) -> None:
    settings, archive = small_backup
    rules = Path(settings.routing.rule_files[0])
    original = rules.read_text(encoding="utf-8")
    rules.write_text(original + "\n# changed after the backup\n", encoding="utf-8")
    template = tmp_path / "templates" / "ack" / "default.en.j2"
    template.unlink()
    target = _settings(tmp_path, f"sqlite:///{tmp_path / 'new.db'}")
    result = restore_backup(target, archive)
    assert result.files_written == [template]
    assert result.files_kept == [rules]
    assert template.read_text(encoding="utf-8") == "Thanks, {{ name }}.\n"
    assert "changed after the backup" in rules.read_text(encoding="utf-8")
    assert (tmp_path / "office.toml.restored").read_text(encoding="utf-8") == original
    db = Database.open(target.database_url)
    with db.read_session() as s:
        assert s.scalars(select(Folder.last_uid)).all() == [3]
    db.dispose()


def test_keep_deletes_all_but_the_newest_backups(tmp_path: Path) -> None:
    settings = _settings(tmp_path, f"sqlite:///{tmp_path / 'source.db'}")
    Database.open(settings.database_url).dispose()
    folder = tmp_path / "backups"
    folder.mkdir()
    (folder / "notes.txt").write_text("not a backup", encoding="utf-8")
    old = [folder / f"triage-backup-2025010{d}T000000Z.tar.gz" for d in range(1, 4)]
    for path in old:
        path.write_bytes(b"old")
    result = make_backup(settings, folder, keep=2)
    remaining = sorted(p.name for p in folder.iterdir())
    assert remaining == ["notes.txt", old[2].name, result.path.name]
    assert result.removed == old[:2]
    assert prune_backups(folder, 1) == [old[2]]


def test_backup_of_postgresql_without_pg_dump_says_what_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no pg_dump here
    settings = _settings(tmp_path, "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    with pytest.raises(BackupError, match="pg_dump is not installed"):
        make_backup(settings, tmp_path / "backups")
