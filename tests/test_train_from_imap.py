"""`triage train --from-imap 'Számlák=billing' ...` against the real Dovecot.

In-process through :func:`support.cli.run_triage` (click's CliRunner).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from click.testing import Result
from support.cli import run_triage
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import imap_table

from triage.training.corpus import read_records, render, shipped_corpus_files

pytestmark = pytest.mark.imap

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {
    "billing": "Számlák",
    "scheduling": "Időpontok",
    "records": "Könyvelés/Bizonylatok",
    "client-support": "Ügyfélszolgálat",
}
PER_FOLDER = 12


def _config(tmp_path: Path, account: ImapAccount) -> Path:
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    start = text.index("[imap]")
    end = text.index("\n[", start + 1)
    imap = imap_table(account, tmp_path)
    table = "[imap]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in imap.items())
    path = tmp_path / "triage.toml"
    path.write_text(text[:start] + table + text[end:], encoding="utf-8")
    return path


def _run(config: Path, *args: str) -> Result:
    return run_triage("--config", str(config), *args, cwd=config.parent)


def _fill(dovecot: Dovecot, account: ImapAccount) -> None:
    """Twelve mails per folder, as a business that sorted its mail by hand has them."""
    files = {p.stem.split("-", 1)[1]: p for p in shipped_corpus_files() if p.stem.startswith("hu-")}
    for queue, folder in FOLDERS.items():
        for index, record in enumerate(read_records(files[queue])[:PER_FOLDER]):
            dovecot.append(account, render(record, index=index), folder=folder)


def test_train_from_sorted_imap_folders(
    dovecot: Dovecot, imap_account: ImapAccount, tmp_path: Path
) -> None:
    _fill(dovecot, imap_account)
    config = _config(tmp_path, imap_account)
    specs = [
        arg for queue, folder in FOLDERS.items() for arg in ("--from-imap", f"{folder}={queue}")
    ]
    done = _run(config, "train", *specs)
    assert done.exit_code == 0, done.stdout + done.stderr
    count = 4 * PER_FOLDER
    assert (
        f"training data: {count} examples in 4 classes from IMAP Számlák=billing,"
        " Időpontok=scheduling, Könyvelés/Bizonylatok=records, Ügyfélszolgálat=client-support"
    ) in done.stdout
    assert "saved and activated" in done.stdout
    with sqlite3.connect(tmp_path / "triage.db") as conn:
        ((n_train, classes),) = conn.execute("select n_train, classes from models")
    assert n_train == count
    assert sorted(json.loads(classes)) == sorted(FOLDERS)
    # Read only: nothing was marked read, moved or deleted.
    client = dovecot.client(imap_account)
    try:
        for folder in FOLDERS.values():
            client.select_folder(folder, readonly=True)
            assert len(client.search("ALL")) == PER_FOLDER
            assert client.search("SEEN") == []
    finally:
        client.logout()

    with_shipped = _run(config, "train", "--shipped", *specs[:2], *specs[2:4])
    assert with_shipped.exit_code == 0, with_shipped.stderr
    assert "from IMAP Számlák=billing, Időpontok=scheduling + shipped set" in with_shipped.stdout


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("Számlák", "write FOLDER=LABEL, e.g. 'Számlák=billing'"),
        ("=billing", "write FOLDER=LABEL"),
        ("Nincs ilyen=billing", "cannot open IMAP folder 'Nincs ilyen'"),
    ],
)
def test_bad_folder_specs_are_one_line_errors(
    dovecot: Dovecot, imap_account: ImapAccount, tmp_path: Path, spec: str, message: str
) -> None:
    config = _config(tmp_path, imap_account)
    done = _run(config, "train", "--from-imap", spec)
    assert done.exit_code == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr
