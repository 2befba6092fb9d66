"""`triage import PATH`: mbox files and Maildirs through the same parse-and-store path."""

from __future__ import annotations

import mailbox
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.mailtest import message, reset_logging

from triage.cli.main import main
from triage.services.intake import Intake
from triage.services.mailsource import maildir_date, open_mail_source
from triage.store import Database
from triage.store.models import Message

ENTRY = "import sys; from triage.cli.main import main; sys.exit(main(sys.argv[1:]))"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


def _config(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "triage.toml"
    path.write_text(f'[database]\nurl = "{url}"\n\n[logging]\nlevel = "warning"\n')
    return path


@pytest.fixture
def config(tmp_path: Path, db_url: str) -> Path:
    """A config on each database kind (SQLite, PostgreSQL)."""
    return _config(tmp_path, db_url)


@pytest.fixture
def sqlite_config(tmp_path: Path, sqlite_url: str) -> Path:
    return _config(tmp_path, sqlite_url)


def _mbox(path: Path, raws: list[bytes], from_lines: list[str]) -> Path:
    with path.open("wb") as f:
        for raw, line in zip(raws, from_lines, strict=True):
            f.write(line.encode() + b"\n" + raw.replace(b"\r\n", b"\n") + b"\n")
    return path


def _rows(db_url: str) -> list[Message]:
    db = Database.open(db_url)
    try:
        with db.session() as s:
            return list(s.scalars(select(Message).order_by(Message.id)).all())
    finally:
        db.dispose()


def _import(config: Path, path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["--config", str(config), "import", str(path)])
    out, err = capsys.readouterr()
    return code, out, err


def test_import_an_mbox_twice_adds_nothing_the_second_time(
    tmp_path: Path, config: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    no_date = b"From: x@example.net\r\nSubject: undated\r\nMessage-ID: <nd@x>\r\n\r\nhi\r\n"
    path = _mbox(
        tmp_path / "history.mbox",
        [message(1), message(2, date="Tue, 07 Jan 2025 17:05:00 -0500"), no_date],
        [
            "From client@example.net Mon Jan  6 08:30:00 2025",
            "From client@example.net Tue Jan  7 22:05:00 2025",
            "From x@example.net Wed Jan  8 10:00:00 2025",
        ],
    )
    code, out, err = _import(config, path, capsys)
    assert code == 0, err
    assert (
        out.strip() == f"mbox {path}: 3 messages, 3 stored, 0 stored with errors, 0 already stored"
    )
    rows = _rows(db_url)
    assert [r.subject for r in rows] == ["Request 1", "Request 2", "undated"]
    assert all(r.source == "import" and r.folder_id is None and r.uid is None for r in rows)
    # received_at is the Date header (UTC); without one, the mbox From line's date
    assert rows[0].received_at == datetime(2025, 1, 6, 8, 30, tzinfo=UTC)
    assert rows[1].received_at == datetime(2025, 1, 7, 22, 5, tzinfo=UTC)
    assert rows[2].received_at == datetime(2025, 1, 8, 10, 0, tzinfo=UTC)
    assert rows[2].internal_date is None

    code, out, _ = _import(config, path, capsys)
    assert code == 0
    assert (
        out.strip() == f"mbox {path}: 3 messages, 0 stored, 0 stored with errors, 3 already stored"
    )
    assert len(_rows(db_url)) == 3


def test_import_a_maildir_twice(
    tmp_path: Path, config: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for n in range(4):
        box.add(message(n))
    box.close()
    code, out, _ = _import(config, tmp_path / "Maildir", capsys)
    assert code == 0
    assert "4 messages, 4 stored" in out
    code, out, _ = _import(config, tmp_path / "Maildir", capsys)
    assert "4 messages, 0 stored, 0 stored with errors, 4 already stored" in out
    rows = _rows(db_url)
    assert sorted(r.message_id for r in rows) == [f"<msg-{n}@example.net>" for n in range(4)]


def test_files_named_like_corpus_files_are_dated_by_their_date_header(
    tmp_path: Path, sqlite_config: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """SpamAssassin (``00001.7c53...``) and 20 Newsgroups (``12345``) files copied into a
    Maildir: their names are not delivery times (they read as 1970-01-01T00:00:01), so the
    Date header is the received time, as for any import."""
    root = tmp_path / "Maildir"
    mailbox.Maildir(root, create=True).close()
    names = ["00001.7c53336b37003a9286aba55d2945844c", "12345", "0000000002.M1P2.host"]
    dates = [
        "Mon, 06 Jan 2025 09:30:00 +0100",
        "Tue, 07 Jan 2025 10:00:00 +0000",
        "Wed, 08 Jan 2025 11:15:00 +0000",
    ]
    for n, (name, date) in enumerate(zip(names, dates, strict=True)):
        (root / "cur" / f"{name}:2,S").write_bytes(message(n, date=date))
    code, out, err = _import(sqlite_config, root, capsys)
    assert code == 0, err
    assert "3 messages, 3 stored" in out
    rows = sorted(_rows(sqlite_url), key=lambda r: r.subject)
    assert [r.received_at.replace(tzinfo=UTC) for r in rows] == [
        datetime(2025, 1, 6, 8, 30, tzinfo=UTC),
        datetime(2025, 1, 7, 10, 0, tzinfo=UTC),
        datetime(2025, 1, 8, 11, 15, tzinfo=UTC),
    ]


def test_an_mbox_placeholder_from_line_date_does_not_override_the_date_header(
    tmp_path: Path, sqlite_config: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """Exported mbox files often carry 1970 or 2000 on their ``From`` lines: the Date
    header is the received time; the ``From`` line's date is only a fallback."""
    no_date = b"From: x@example.net\r\nSubject: undated\r\nMessage-ID: <nd@x>\r\n\r\nhi\r\n"
    path = _mbox(
        tmp_path / "export.mbox",
        [message(1, date="Mon, 06 Jan 2025 09:30:00 +0100"), no_date],
        ["From MAILER-DAEMON Thu Jan  1 00:00:00 1970", "From x@y Sat Jan  1 00:00:00 2000"],
    )
    code, _out, err = _import(sqlite_config, path, capsys)
    assert code == 0, err
    rows = _rows(sqlite_url)
    assert [r.subject for r in rows] == ["Request 1", "undated"]
    assert [r.received_at.replace(tzinfo=UTC) for r in rows] == [
        datetime(2025, 1, 6, 8, 30, tzinfo=UTC),
        datetime(2000, 1, 1, 0, 0, tzinfo=UTC),  # no Date header: the From line's date
    ]


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("1700000000.M1P2.host", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("1700000000", datetime(2023, 11, 14, 22, 13, 20, tzinfo=UTC)),
        ("00001.7c53336b37003a9286aba55d2945844c", None),  # SpamAssassin
        ("12345", None),  # 20 Newsgroups
        ("000000001.M1P2.host", None),  # nine digits, but 1970
        ("599999999.M1.host", None),  # 1988: before Maildir existed
        ("1736000000x.host", None),  # digits not ending the first field
        ("4102444800.M1.host", None),  # 2100: in the future
        ("99999999999999999999.M1.host", None),
    ],
)
def test_a_maildir_file_name_is_a_delivery_time_only_when_plausible(
    key: str, expected: datetime | None
) -> None:
    assert maildir_date(key, now=datetime(2025, 1, 1, tzinfo=UTC)) == expected


def test_a_maildir_file_name_up_to_a_day_ahead_is_accepted() -> None:
    now = datetime(2025, 1, 1, tzinfo=UTC)
    ahead = int(now.timestamp()) + 23 * 3600
    assert maildir_date(f"{ahead}.M1.host", now=now) == datetime(2025, 1, 1, 23, tzinfo=UTC)
    assert maildir_date(f"{ahead + 2 * 3600}.M1.host", now=now) is None


def test_same_message_id_with_other_bytes_is_a_different_message(database: Database) -> None:
    intake = Intake(database)
    first = message(1)
    edited = message(1, body="a different body, same Message-ID")
    assert intake.import_message(first).value == "stored"
    assert intake.import_message(first).value == "recognized"
    assert intake.import_message(edited).value == "stored"
    with database.session() as s:
        assert s.scalar(select(func.count()).select_from(Message)) == 2


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda p: p / "missing.mbox", "no such file or directory"),
        (lambda p: p / "nonexistent", "nonexistent: no such file or directory"),
        (lambda p: (p / "plain").mkdir() or p / "plain", "not a Maildir"),
        (lambda p: (p / "x.csv").write_text("a,b\n1,2\n") and p / "x.csv", "not an mbox file"),
        (lambda p: (p / "empty").write_bytes(b"") or p / "empty", "is empty"),
    ],
    ids=["missing", "missing-no-suffix", "directory", "not-mail", "empty"],
)
def test_bad_paths_are_one_line_errors_with_exit_2(
    tmp_path: Path,
    sqlite_config: Path,
    capsys: pytest.CaptureFixture[str],
    make: object,
    expected: str,
) -> None:
    path = make(tmp_path)  # type: ignore[operator]
    code, out, err = _import(sqlite_config, path, capsys)
    assert code == 2
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("error: ")
    assert expected in err


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_an_unreadable_file_is_a_one_line_error(
    tmp_path: Path, sqlite_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _mbox(tmp_path / "locked.mbox", [message(1)], ["From a Mon Jan  6 08:30:00 2025"])
    path.chmod(0)
    code, _, err = _import(sqlite_config, path, capsys)
    assert code == 2
    assert "cannot read" in err


def test_a_progress_bar_is_shown_on_a_terminal(tmp_path: Path, sqlite_config: Path) -> None:
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for n in range(30):
        box.add(message(n))
    master, slave = pty.openpty()
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-c",
                ENTRY,
                "--config",
                str(sqlite_config),
                "import",
                str(tmp_path / "Maildir"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=slave,
            timeout=120,
            check=False,
            env={**os.environ, "TERM": "xterm", "COLUMNS": "100"},
        )
        os.close(slave)
        slave = -1
        chunks = []
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    terminal = b"".join(chunks).decode(errors="replace")
    assert done.returncode == 0
    assert "30 messages, 30 stored" in done.stdout.decode()
    assert "importing" in terminal
    assert "30/30" in terminal


@pytest.mark.corpus
def test_import_a_slice_of_the_spamassassin_corpus(
    corpus_dir: Path, tmp_path: Path, config: Path, db_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    files = sorted((corpus_dir / "spamassassin" / "hard_ham").iterdir())[:120]
    box = mailbox.Maildir(tmp_path / "Maildir", create=True)
    for f in files:
        raw = f.read_bytes()
        box.add(raw.split(b"\n", 1)[1] if raw.startswith(b"From ") else raw)  # drop mbox framing
    box.close()
    code, out, err = _import(config, tmp_path / "Maildir", capsys)
    assert code == 0, err
    rows = _rows(db_url)
    assert len(rows) == 120
    assert f"maildir {tmp_path / 'Maildir'}: 120 messages, " in out
    assert all(r.raw_size == len(r.raw) for r in rows)
    assert sum(1 for r in rows if r.subject) > 100
    # and a second import of the same slice adds nothing
    code, out, _ = _import(config, tmp_path / "Maildir", capsys)
    assert "0 stored, 0 stored with errors, 120 already stored" in out
    assert len(_rows(db_url)) == 120
    source = open_mail_source(tmp_path / "Maildir")
    assert len(source) == 120
    source.close()
