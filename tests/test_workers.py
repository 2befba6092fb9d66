"""Several workers: folder leases on PostgreSQL, one daemon per SQLite file, several accounts.

Correctness never depends on the lease: two workers on one folder store each
message once (the unique key and the conditional high-water mark); the lease
only spreads the folders so that a second worker adds capacity.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from support.daemonproc import daemon_config, write_config
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import append_many, imap_table, message, settings_for

from triage.cli.main import cli, main
from triage.clock import utcnow
from triage.config import parse_config
from triage.services.intake import Poller
from triage.services.workers import WorkerLeases, list_workers, sqlite_daemon_lock
from triage.store import Database
from triage.store.models import Folder, Message


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


def fill(
    dovecot: Dovecot, account: ImapAccount, count: int, tag: str, folder: str = "INBOX"
) -> None:
    client = dovecot.client(account)
    try:
        if not client.folder_exists(folder):
            client.create_folder(folder)
        raws = [message(n, message_id=f"<{tag}-{n}@example.net>") for n in range(count)]
        append_many(client, raws, folder)
    finally:
        client.logout()


def stored(db: Database) -> list[tuple[str, int | None]]:
    with db.read_session() as s:
        return [
            (name, uid)
            for name, uid in s.execute(
                select(Folder.name, Message.uid).join(Folder, Message.folder_id == Folder.id)
            )
        ]


# -- SQLite: one daemon per file ------------------------------------------------------------


def test_a_second_daemon_on_one_sqlite_file_is_refused_with_a_clear_message(
    tmp_path: Path, imap_account: ImapAccount, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'triage.db'}"
    config = write_config(
        tmp_path / "triage.toml", daemon_config(imap_account, 2525, url, tmp_path)
    )
    db = Database.open(url)
    try:
        with sqlite_daemon_lock(db):  # the first daemon
            code = main(["--config", str(config), "run"])
    finally:
        db.dispose()
    err = capsys.readouterr().err
    assert code != 0
    assert "another `triage run`" in err
    assert f"pid {os.getpid()}" in err
    assert "PostgreSQL" in err


def test_the_sqlite_lock_is_free_again_after_the_daemon_stops(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'triage.db'}")
    try:
        with sqlite_daemon_lock(db):
            pass
        with sqlite_daemon_lock(db):  # not refused: the first one let go
            pass
    finally:
        db.dispose()


def test_leases_are_inert_on_sqlite(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'triage.db'}")
    try:
        leases = WorkerLeases(db)
        assert not leases.enabled
        leases.register()
        assert leases.acquire(1) == ""
        assert list_workers(db, utcnow()) == []
    finally:
        db.dispose()


# -- PostgreSQL: leases -----------------------------------------------------------------------


@pytest.mark.postgres
def test_a_dead_workers_folders_are_taken_over_when_its_lease_lapses(pg_url: str) -> None:
    db = Database.open(pg_url)
    try:
        with db.session() as s:
            s.add_all([Folder(name="INBOX", last_uid=0), Folder(name="Orders", last_uid=0)])
        with db.read_session() as s:
            ids = list(s.scalars(select(Folder.id).order_by(Folder.name)))
        a = WorkerLeases(db, ttl=1.0, name="worker-a")
        b = WorkerLeases(db, ttl=1.0, name="worker-b")
        a.register()
        assert [a.acquire(f) for f in ids] == ["", ""]
        b.register()
        assert b.acquire(ids[0]) == "worker-a"  # held by a live worker
        held, live = a.heartbeat()
        assert held == set(ids)
        assert live == 2
        assert a.share(len(ids), live) == 1  # a should let one go
        # worker-a dies: it renews nothing from now on; b takes over once the lease lapses
        started = time.monotonic()
        wait_for(lambda: b.acquire(ids[0]) == "", 10, "the lease of a dead worker to lapse")
        assert time.monotonic() - started < 5
        assert b.acquire(ids[1]) == ""
        infos = {w.name: w for w in list_workers(db, utcnow())}
        assert infos["worker-b"].folders == ("INBOX", "Orders")
        b.unregister()
        with db.read_session() as s:
            assert set(s.scalars(select(Folder.lease_worker))) == {""}
    finally:
        db.dispose()


@pytest.mark.postgres
def test_two_daemons_share_two_busy_folders_and_store_everything_once(
    pg_url: str, dovecot: Dovecot, imap_account: ImapAccount, tmp_path: Path
) -> None:
    fill(dovecot, imap_account, 40, "inbox")
    fill(dovecot, imap_account, 40, "orders", "Orders")
    settings = settings_for(imap_account, pg_url, tmp_path, folders=["INBOX", "Orders"])
    dbs = [Database.open(pg_url), Database.open(pg_url)]
    pollers = [
        Poller(settings, db, leases=WorkerLeases(db, name=f"w{n}")) for n, db in enumerate(dbs)
    ]
    stop = threading.Event()
    threads = [threading.Thread(target=p.run, args=(stop,)) for p in pollers]
    try:
        for thread in threads:
            thread.start()
        seen: set[tuple[str, ...]] = set()

        def spread() -> bool:
            infos = list_workers(dbs[0], utcnow())
            seen.update(w.folders for w in infos)
            return len(infos) == 2 and all(len(w.folders) == 1 for w in infos)

        wait_for(spread, 30, "each worker to hold one folder")
        wait_for(lambda: len(stored(dbs[0])) == 80, 60, "all 80 messages")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    rows = stored(dbs[0])
    assert len(rows) == len(set(rows)) == 80
    assert {name for name, _ in rows} == {"INBOX", "Orders"}
    with dbs[0].read_session() as s:
        assert set(s.scalars(select(Folder.lease_worker))) == {""}  # released at the stop
    for db in dbs:
        db.dispose()


def test_two_workers_on_one_folder_without_leases_store_each_message_once(
    db_url: str, dovecot: Dovecot, imap_account: ImapAccount, tmp_path: Path
) -> None:
    """The lease is an optimisation: two workers passing over one folder at once
    (no lease at all here) still store every message exactly once."""
    fill(dovecot, imap_account, 60, "both")
    settings = settings_for(imap_account, db_url, tmp_path, batch_size=5)
    dbs = [Database.open(db_url), Database.open(db_url)]
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda db=db: results.extend(Poller(settings, db).poll_once()))
        for db in dbs
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    rows = stored(dbs[0])
    assert sorted(uid or 0 for _, uid in rows) == list(range(1, 61))
    reports = [r.report for r in results]  # type: ignore[attr-defined]
    assert all(r is not None for r in reports)
    assert sum(r.stored for r in reports) == 60  # type: ignore[union-attr]
    with dbs[0].read_session() as s:
        assert s.scalar(select(func.max(Folder.last_uid))) == 60
    for db in dbs:
        db.dispose()


@pytest.mark.postgres
def test_poll_once_leaves_a_folder_another_worker_watches_to_it(
    pg_url: str, dovecot: Dovecot, imap_account: ImapAccount, tmp_path: Path
) -> None:
    fill(dovecot, imap_account, 3, "held")
    db = Database.open(pg_url)
    try:
        settings = settings_for(imap_account, pg_url, tmp_path)
        other = WorkerLeases(db, name="the-daemon")
        other.register()
        poller = Poller(settings, db, leases=WorkerLeases(db))
        assert other.acquire(poller.intake.folder_id("INBOX")) == ""
        [result] = poller.poll_once()
        assert result.held_by == "the-daemon"
        assert result.report is None
        assert stored(db) == []
        other.unregister()
        [result] = poller.poll_once()
        assert result.report is not None
        assert result.report.stored == 3
    finally:
        db.dispose()


@pytest.mark.postgres
def test_status_lists_the_workers_and_what_each_holds(
    pg_url: str, imap_account: ImapAccount, tmp_path: Path
) -> None:
    config = write_config(
        tmp_path / "triage.toml", daemon_config(imap_account, 2525, pg_url, tmp_path)
    )
    db = Database.open(pg_url)
    try:
        with db.session() as s:
            s.add(Folder(name="INBOX", last_uid=0))
        with db.read_session() as s:
            fid = s.scalar(select(Folder.id))
        worker = WorkerLeases(db, name="host-1:4242:abc")
        worker.register()
        assert fid is not None
        assert worker.acquire(fid) == ""
        text = CliRunner().invoke(cli, ["--config", str(config), "status"]).output
        assert "Workers:" in text
        assert "host-1:4242:abc: heartbeat" in text
        assert "watches INBOX" in text
        data = json.loads(
            CliRunner().invoke(cli, ["--config", str(config), "status", "--json"]).output
        )
        [listed] = data["workers"]
        assert listed["name"] == "host-1:4242:abc"
        assert listed["folders"] == ["INBOX"]
        assert listed["alive"] is True
    finally:
        db.dispose()


# -- several IMAP accounts ----------------------------------------------------------------------


def test_several_accounts_are_polled_each_with_its_own_login_and_folders(
    db_url: str, dovecot: Dovecot, tmp_path: Path
) -> None:
    office, sales = dovecot.add_user(), dovecot.add_user()
    fill(dovecot, office, 2, "office")
    fill(dovecot, sales, 3, "sales")
    fill(dovecot, sales, 1, "orders", "Orders")
    imap = imap_table(office, tmp_path)
    second = imap_table(sales, tmp_path)
    imap["accounts"] = [
        {
            "name": "sales",
            "username": sales.username,
            "password_file": second["password_file"],
            "folders": ["INBOX", "Orders"],
        }
    ]
    settings = parse_config(
        {"database": {"url": db_url}, "imap": imap, "monitoring": {"port": 0}},
        source=str(tmp_path / "test.toml"),
        base_dir=tmp_path,
    )
    assert settings.imap is not None
    assert settings.imap.folder_keys() == ["INBOX", "sales:INBOX", "sales:Orders"]
    db = Database.open(db_url)
    try:
        results = Poller(settings, db).poll_once()
        assert [(r.folder, r.report.stored if r.report else r.error) for r in results] == [
            ("INBOX", 2),
            ("INBOX", 3),
            ("Orders", 1),
        ]
        counts: dict[str, int] = {}
        for name, _uid in stored(db):
            counts[name] = counts.get(name, 0) + 1
        assert counts == {"INBOX": 2, "sales:INBOX": 3, "sales:Orders": 1}
        # a second pass finds nothing new in any of them
        again = Poller(settings, db).poll_once()
        assert [r.report.stored for r in again if r.report] == [0, 0, 0]
    finally:
        db.dispose()


def test_an_account_without_a_name_or_with_a_bad_one_is_refused(tmp_path: Path) -> None:
    base = {"host": "127.0.0.1", "username": "u", "password_env": "X"}
    for accounts, key in (
        ([{"username": "s", "password_env": "Y"}], "imap.accounts.0.name"),
        ([{"name": "Sales", "username": "s", "password_env": "Y"}], "imap.accounts.0.name"),
        (
            [
                {"name": "a", "username": "s", "password_env": "Y"},
                {"name": "a", "username": "t", "password_env": "Y"},
            ],
            "used twice",
        ),
    ):
        with pytest.raises(Exception, match=key.replace(".", r"\.")):
            parse_config(
                {"imap": {**base, "accounts": accounts}}, source="t.toml", base_dir=tmp_path
            )


@pytest.mark.postgres
def test_a_crashed_worker_on_this_host_is_taken_over_at_once(pg_url: str) -> None:
    """A process killed (SIGKILL, OOM) on this host holds its lease no longer than it
    lives: a restart takes the folder at once instead of waiting for the TTL."""
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        check=True,
        capture_output=True,
        text=True,
    )
    dead_pid = int(gone.stdout)
    db = Database.open(pg_url)
    try:
        with db.session() as s:
            s.add(Folder(name="INBOX", last_uid=0))
        with db.read_session() as s:
            fid = s.scalar(select(Folder.id))
        assert fid is not None
        crashed = WorkerLeases(db, name=f"{socket.gethostname()}:{dead_pid}:abcdef")
        crashed.register()
        assert crashed.acquire(fid) == ""
        elsewhere = WorkerLeases(db, name="other-host:1:abcdef")
        restarted = WorkerLeases(db)
        restarted.register()
        assert restarted.acquire(fid) == ""
        assert elsewhere.acquire(fid) == restarted.name  # held by a live worker again
        assert [w.name for w in list_workers(db, utcnow())] == [restarted.name]
    finally:
        db.dispose()
