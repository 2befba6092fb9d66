"""The watcher survives what real networks and servers do (../shared/cases/B28).

- a connection that silently stops carrying data (NAT/firewall drop, no RST): a
  loopback proxy between triage and the real Dovecot freezes the flow;
- the server going away (``* BYE``, refused connections): Dovecot is restarted;
- a stop request: the watcher logs out and returns within seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Self

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import message, settings_for
from support.proxy import FaultProxy

from triage.services.intake import Poller
from triage.store import Database
from triage.store.models import Folder, Message

pytestmark = [pytest.mark.imap, pytest.mark.slow]

FAST = {
    "fallback_poll": 2,
    "timeout": 1.5,
    "reconnect_initial": 0.2,
    "reconnect_max": 1,
}


@pytest.fixture
def db(sqlite_url: str) -> Database:
    return Database.open(sqlite_url)


@pytest.fixture
def proxy(imap_account: ImapAccount) -> Iterator[FaultProxy]:
    p = FaultProxy(imap_account.host, imap_account.port).start()
    try:
        yield p
    finally:
        p.stop()


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _stored(db: Database) -> list[Message]:
    with db.session() as s:
        return list(s.scalars(select(Message).order_by(Message.uid)).all())


class Running:
    """A Poller.run in a thread, stopped (and checked to stop) on exit."""

    def __init__(self, poller: Poller, grace: float = 5.0) -> None:
        self.poller = poller
        self.stop = threading.Event()
        self.thread = threading.Thread(
            target=poller.run, args=(self.stop,), kwargs={"grace": grace}
        )
        self.stopped_in = -1.0

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        started = time.monotonic()
        self.thread.join(30)
        self.stopped_in = time.monotonic() - started
        assert not self.thread.is_alive()


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "polling"])
def test_a_silently_dropped_connection_is_detected_and_mail_ingested(  # noqa: PLR0917 - fixtures
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
    idle: bool,
) -> None:
    settings = settings_for(
        imap_account, sqlite_url, tmp_path, port=proxy.port, idle=idle, poll_interval=1, **FAST
    )
    poller = Poller(settings, db)
    arrivals = [datetime(2025, 3, 3, h, m, tzinfo=UTC) for h, m in ((10, 50), (11, 5), (11, 20))]
    with capture_logs() as logs, Running(poller):
        assert _wait_for(lambda: poller.watchers[0].passes >= 1, 10)
        assert proxy.blackhole() == 1  # the flow is gone; no RST, no FIN, no BYE
        for n, arrived in enumerate(arrivals, start=9001):
            dovecot.append(imap_account, message(n), msg_time=arrived)
        # detected by the fallback search timing out, reconnected, ingested
        assert _wait_for(lambda: len(_stored(db)) == 3, 20)
    rows = _stored(db)
    assert [r.message_id for r in rows] == [f"<msg-{n}@example.net>" for n in (9001, 9002, 9003)]
    # the SLA clock starts at INTERNALDATE, not at the late ingestion
    assert [r.received_at for r in rows] == arrivals
    assert [r.internal_date for r in rows] == arrivals
    assert proxy.accepted >= 2
    reconnecting = [e for e in logs if e["event"] == "imap_reconnecting"]
    assert reconnecting
    assert reconnecting[0]["attempt"] == 1
    assert "timed out" in reconnecting[0]["error"]


def test_a_server_restart_is_survived(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    # fallback_poll long: the old imap process ends an idle session sooner than a busy one
    settings = settings_for(imap_account, sqlite_url, tmp_path, **{**FAST, "fallback_poll": 60})
    poller = Poller(settings, db)
    dovecot.append(imap_account, message(1))
    with capture_logs() as logs, Running(poller):
        assert _wait_for(lambda: len(_stored(db)) == 1, 10)
        # Dovecot's old imap process says "* BYE Server shutting down." about 10 s
        # after the master stopped; then the watcher must come back on its own.
        dovecot.restart()
        assert _wait_for(
            lambda: any(e["event"] == "imap_connected" and e["attempt"] >= 1 for e in logs), 30
        )
        dovecot.append(imap_account, message(2))
        assert _wait_for(lambda: len(_stored(db)) == 2, 10)
    assert [r.uid for r in _stored(db)] == [1, 2]
    errors = [e["error"] for e in logs if e["event"] == "imap_reconnecting"]
    assert "BYE" in errors[0]
    assert "Server shutting down" in errors[0]
    with db.session() as s:
        folder = s.scalars(select(Folder)).one()
        assert folder.last_uid == 2


def test_stop_logs_out_within_seconds(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    poller = Poller(settings_for(imap_account, sqlite_url, tmp_path), db)
    with capture_logs() as logs:
        running = Running(poller)
        with running:
            assert _wait_for(lambda: poller.watchers[0].passes >= 1, 10)
            time.sleep(0.8)  # now idling
    assert running.stopped_in < 3
    assert any(e["event"] == "imap_watch_stopped" for e in logs)
    assert not any(e["event"] == "imap_watch_interrupted" for e in logs)  # no forced close

    def logged_out() -> bool:
        log = (dovecot.dir / "dovecot.log").read_text(errors="replace")
        ours = [line for line in log.splitlines() if imap_account.username in line]
        return any("Logged out" in line for line in ours)

    # Dovecot's log process writes the line a moment after the LOGOUT it records
    assert _wait_for(logged_out, 5)


def test_stop_on_a_dead_connection_does_not_hang(
    imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path, proxy: FaultProxy
) -> None:
    settings = settings_for(
        imap_account, sqlite_url, tmp_path, port=proxy.port, fallback_poll=60, timeout=30
    )
    poller = Poller(settings, db)
    running = Running(poller, grace=1.0)
    with running:
        assert _wait_for(lambda: poller.watchers[0].passes >= 1, 10)
        proxy.blackhole()
        time.sleep(0.3)
    # DONE gets no answer (30 s timeout); after the 1 s grace the socket is shut down
    assert running.stopped_in < 4


def test_a_refused_login_is_retried_with_back_off_until_it_works(
    dovecot: Dovecot, imap_account: ImapAccount, db: Database, sqlite_url: str, tmp_path: Path
) -> None:
    # Dovecot answers a wrong password late (auth_failure_delay, growing up to 15 s with
    # the failures from one address that the anvil counts): allow for it
    settings = settings_for(imap_account, sqlite_url, tmp_path, **{**FAST, "timeout": 20})
    assert settings.imap is not None
    secret = Path(settings.imap.password_file)
    secret.write_text("wrong")
    dovecot.append(imap_account, message(1))
    poller = Poller(settings, db)
    with capture_logs() as logs, Running(poller):
        assert _wait_for(lambda: sum(e["event"] == "imap_reconnecting" for e in logs) >= 2, 20)
        with db.session() as s:
            assert "refused" in s.scalars(select(Folder.last_error)).one()
        secret.write_text(imap_account.password)  # the operator fixes the secret
        assert _wait_for(lambda: len(_stored(db)) == 1, 20)
    attempts = [e["attempt"] for e in logs if e["event"] == "imap_reconnecting"]
    assert attempts[:2] == [1, 2]
    delays = [e["delay"] for e in logs if e["event"] == "imap_reconnecting"]
    assert all(0.1 <= d <= 1 for d in delays)  # reconnect_initial 0.2 s, capped at 1 s
    assert any(e["event"] == "imap_login_refused" for e in logs)
