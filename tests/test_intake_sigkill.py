"""Exactly once across crashes: `triage poll --once` killed with SIGKILL mid-way, twice.

A few hundred messages wait in the real Dovecot; the poller (a separate process,
started the way an operator would) is killed with SIGKILL while it ingests them,
restarted, killed again, and finally run to the end. Every message must be stored
exactly once, on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import append_many, imap_table, message

from triage.store import Database
from triage.store.models import Folder, Message

pytestmark = [pytest.mark.imap, pytest.mark.slow]

TOTAL = 400
ENTRY = "import sys; from triage.cli.main import main; sys.exit(main(sys.argv[1:]))"
"""What the `triage` console script runs (``python -m triage.cli.main`` would load the
module twice and register the commands on the other copy)."""


def _toml(value: object) -> str:
    return json.dumps(value)  # strings, numbers and lists of strings are valid TOML as JSON


def _write_config(path: Path, db_url: str, account: ImapAccount, tmp_path: Path) -> None:
    imap = imap_table(account, tmp_path, batch_size=10)
    lines = ["[database]", f"url = {_toml(db_url)}", "", "[imap]"]
    lines += [f"{key} = {_toml(value)}" for key, value in imap.items()]
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


def _count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Message)) or 0)


def _kill_when(proc: subprocess.Popen[str], db: Database, at_least: int) -> int:
    """SIGKILL ``proc`` as soon as ``at_least`` rows are committed; return the count then."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        count = _count(db)
        if count >= at_least:
            proc.send_signal(signal.SIGKILL)
            proc.communicate(timeout=30)  # reap it and close its pipes
            return count
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"the poller ended before it could be killed: {out}\n{err}")
        time.sleep(0.01)
    proc.kill()
    proc.communicate()
    pytest.fail("the poller stored nothing within two minutes")


def _stored_count(output: str) -> int:
    match = re.search(
        r"INBOX: (\d+) stored, (\d+) stored with errors, (\d+) already stored", output
    )
    assert match, output
    stored, errors, already = (int(g) for g in match.groups())
    assert errors == 0
    assert already == 0  # progress committed with each message: nothing is fetched twice
    return stored


def test_sigkill_mid_ingest_then_restart_stores_everything_exactly_once(
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
        killed_at = _kill_when(first, db, 40)
        assert first.returncode == -signal.SIGKILL
        after_first = _count(db)
        assert after_first < TOTAL, "the kill came too late to test anything"

        second = _poll(config)
        _kill_when(second, db, after_first + 60)
        assert second.returncode == -signal.SIGKILL
        after_second = _count(db)
        assert after_second < TOTAL

        last = _poll(config)
        out, err = last.communicate(timeout=120)
        assert last.returncode == 0, err
        assert _stored_count(out) == TOTAL - after_second

        with db.session() as s:
            rows = s.execute(select(Message.uidvalidity, Message.uid, Message.raw_sha256)).all()
            folder = s.scalars(select(Folder)).one()
        assert killed_at >= 40
        assert len(rows) == TOTAL
        assert len({(uv, uid) for uv, uid, _ in rows}) == TOTAL
        assert {uid for _, uid, _ in rows} == set(range(1, TOTAL + 1))
        assert {sha for _, _, sha in rows} == {hashlib.sha256(r).hexdigest() for r in raws}
        assert (folder.last_uid, folder.uidvalidity) == (TOTAL, rows[0][0])
    finally:
        db.dispose()
