"""`triage poll --once` against the real Dovecot."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import imap_table, message, reset_logging

from triage.cli.main import main

pytestmark = pytest.mark.imap


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    yield
    reset_logging()


def _config(tmp_path: Path, sqlite_url: str, imap: dict[str, object] | None) -> Path:
    lines = ["[database]", f"url = {json.dumps(sqlite_url)}", "[logging]", 'level = "warning"']
    if imap is not None:
        lines.append("[imap]")
        lines += [f"{k} = {json.dumps(v)}" for k, v in imap.items()]
    path = tmp_path / "triage.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_poll_once_prints_counts_per_folder(
    dovecot: Dovecot,
    imap_account: ImapAccount,
    tmp_path: Path,
    sqlite_url: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    dovecot.append(imap_account, message(1))
    dovecot.append(imap_account, message(2), folder="Orders")
    imap = imap_table(imap_account, tmp_path, folders=["INBOX", "Orders"])
    config = _config(tmp_path, sqlite_url, imap)
    assert main(["--config", str(config), "poll", "--once"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [
        "INBOX: 1 stored, 0 stored with errors, 0 already stored",
        "Orders: 1 stored, 0 stored with errors, 0 already stored",
        "outbox: nothing sent (no [smtp] section); SLA watch: 0 new warnings/escalations",
    ]
    assert main(["--config", str(config), "poll", "--once"]) == 0
    assert "INBOX: 0 stored" in capsys.readouterr().out


def test_poll_without_once_points_to_run(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, sqlite_url, None)
    assert main(["--config", str(config), "poll"]) == 2
    err = capsys.readouterr().err
    assert "--once" in err
    assert "triage run" in err


def test_poll_without_an_imap_section_is_a_config_error(
    tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = _config(tmp_path, sqlite_url, None)
    assert main(["--config", str(config), "poll", "--once"]) == 2
    assert "no [imap] section" in capsys.readouterr().err


def test_poll_with_a_refused_login_exits_2_with_the_reason(
    imap_account: ImapAccount, tmp_path: Path, sqlite_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    imap = imap_table(imap_account, tmp_path)
    Path(str(imap["password_file"])).write_text("wrong-password")
    config = _config(tmp_path, sqlite_url, imap)
    assert main(["--config", str(config), "poll", "--once"]) == 2
    captured = capsys.readouterr()
    assert "INBOX: failed: login as" in captured.err
    assert "wrong-password" not in captured.err + captured.out
