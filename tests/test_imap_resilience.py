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
from sqlalchemy.engine import make_url
from structlog.testing import capture_logs
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import message, settings_for
from support.proxy import FaultProxy, inject_before, stall_in_literal

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


# -- issue 13: mail arriving during a pass, dead links, per-part back-off ----------------


class AppendDuring:
    """A pipeline that APPENDs ``count`` more mails (straight to Dovecot) while the first
    message is being stored: they arrive in the middle of a pass."""

    def __init__(self, dovecot: Dovecot, account: ImapAccount, count: int) -> None:
        self.dovecot = dovecot
        self.account = account
        self.count = count
        self.calls = 0

    def process(self, _session: object, _row: object, _message: object) -> None:
        self.calls += 1
        if self.calls == 1:
            for n in range(100, 100 + self.count):
                self.dovecot.append(self.account, message(n))


@pytest.mark.parametrize(
    ("announced_with", "before", "overrides"),
    [
        ("STORE", 1, {"after_ingest": "keyword"}),  # the after-ingest STORE's answer does
        ("NOOP", 1, {"idle": False, "poll_interval": 300, "keepalive": 0.5}),  # a keepalive's
    ],
)
def test_mail_arriving_during_a_pass_is_handled_at_once(  # noqa: PLR0917 - fixtures
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
    announced_with: str,
    before: int,
    overrides: dict[str, object],
) -> None:
    for n in range(1, before + 1):
        dovecot.append(imap_account, message(n))
    # no fallback poll for 5 minutes: only the EXISTS seen during the pass can bring them in
    settings = settings_for(
        imap_account, sqlite_url, tmp_path, port=proxy.port, fallback_poll=300, **overrides
    )
    pipeline = AppendDuring(dovecot, imap_account, 3)
    poller = Poller(settings, db, pipeline=pipeline)
    with capture_logs() as logs, Running(poller):
        assert _wait_for(lambda: len(_stored(db)) == before + 3, 15), (announced_with, logs)
    assert proxy.count(announced_with) >= 1
    assert proxy.accepted == 1  # no reconnect was needed


@pytest.mark.parametrize("command", ["SEARCH", "FETCH"])
def test_an_exists_with_a_search_or_fetch_answer_starts_another_pass_before_idling(  # noqa: PLR0917
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
    command: str,
) -> None:
    # Dovecot announces mail delivered during a pass with the next command that syncs
    # the mailbox (STORE, NOOP, SEARCH, DONE); other servers send EXISTS with any
    # answer, FETCH too (RFC 3501 section 7: at any time). The proxy adds one.
    dovecot.append(imap_account, message(1))
    rule = proxy.add(inject_before(command, b"* 7 EXISTS\r\n"))
    poller = Poller(
        settings_for(imap_account, sqlite_url, tmp_path, port=proxy.port, fallback_poll=300), db
    )
    with Running(poller):
        assert _wait_for(lambda: "IDLE" in proxy.commands, 10)
    assert rule.hits == 1
    commands = [c for c in proxy.commands if c in {"SEARCH", "IDLE"}]
    # the pass's answer came with an EXISTS: a second pass, and only then IDLE
    assert commands[:3] == ["SEARCH", "SEARCH", "IDLE"]


@pytest.mark.parametrize("idle", [True, False], ids=["idle", "polling"])
def test_a_silently_dropped_link_is_found_by_the_keepalive_not_the_fallback_poll(  # noqa: PLR0917
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
    idle: bool,
) -> None:
    # fallback poll and polling interval at 5 minutes: only the keepalive can find it
    settings = settings_for(
        imap_account, sqlite_url, tmp_path, port=proxy.port, idle=idle, poll_interval=300,
        fallback_poll=300, keepalive=1, timeout=1.5, reconnect_initial=0.2, reconnect_max=1,
    )  # fmt: skip
    poller = Poller(settings, db)
    with capture_logs() as logs, Running(poller):
        assert _wait_for(lambda: poller.watchers[0].passes >= 1, 10)
        time.sleep(0.3)  # waiting now
        assert proxy.blackhole() == 1  # no FIN, no RST, nothing
        dropped = time.monotonic()
        dovecot.append(imap_account, message(7))
        assert _wait_for(lambda: any(e["event"] == "imap_reconnecting" for e in logs), 10)
        found_in = time.monotonic() - dropped
        # and it catches up on what arrived meanwhile
        assert _wait_for(lambda: len(_stored(db)) == 1, 10)
    # keepalive 1 s + an answer due within 1.5 s, with slack for a loaded machine
    assert found_in < 6
    error = next(e["error"] for e in logs if e["event"] == "imap_reconnecting")
    assert "timed out" in error
    assert proxy.accepted == 2


def test_a_fetch_stalled_in_the_middle_of_a_literal_is_fetched_again_after_reconnecting(  # noqa: PLR0917
    dovecot: Dovecot,
    imap_account: ImapAccount,
    db: Database,
    sqlite_url: str,
    tmp_path: Path,
    proxy: FaultProxy,
) -> None:
    raws = [message(n) for n in range(1, 4)]
    for raw in raws:
        dovecot.append(imap_account, raw)
    rule = proxy.add(stall_in_literal(2))
    settings = settings_for(imap_account, sqlite_url, tmp_path, port=proxy.port, **FAST)
    poller = Poller(settings, db)
    with capture_logs() as logs, Running(poller):
        assert _wait_for(lambda: len(_stored(db)) == 3, 15)
    assert rule.hits == 1
    assert [r.raw for r in _stored(db)] == raws
    assert any("timed out" in e.get("error", "") for e in logs if e["event"] == "imap_reconnecting")


@pytest.mark.postgres
def test_a_database_outage_backs_off_apart_from_the_healthy_imap_connection(
    dovecot: Dovecot, imap_account: ImapAccount, pg_url: str, tmp_path: Path, proxy: FaultProxy
) -> None:
    url = make_url(pg_url)
    assert url.host is not None
    assert url.port is not None
    with FaultProxy(url.host, url.port, protocol="raw") as pg:
        db = Database.open(url.set(port=pg.port).render_as_string(hide_password=False))
        try:
            settings = settings_for(
                imap_account, pg_url, tmp_path, port=proxy.port, fallback_poll=300,
                reconnect_initial=5, reconnect_max=60,
            )  # fmt: skip
            poller = Poller(settings, db)
            dovecot.append(imap_account, message(1))
            with capture_logs() as logs, Running(poller):
                assert _wait_for(lambda: len(_stored(db)) == 1, 10)
                pg.refuse_new()
                pg.cut()  # the database is gone; the IMAP server is fine
                dovecot.append(imap_account, message(2))
                assert _wait_for(
                    lambda: any(e["event"] == "intake_database_failed" for e in logs), 10
                )
                time.sleep(3)  # several database retries (1 s doubling)
                pg.refuse_new(refuse=False)
                back = time.monotonic()
                assert _wait_for(lambda: len(_stored(db)) == 2, 15)
                caught_up = time.monotonic() - back
        finally:
            db.dispose()
    events = [e["event"] for e in logs]
    # the IMAP connection was never dropped nor its back-off grown
    assert "imap_reconnecting" not in events
    assert proxy.accepted == 1
    assert poller.watchers[0].backoff.attempt == 0
    # one line when the failure started, one when it ended, not one per retry
    assert events.count("intake_database_failed") == 1
    assert events.count("intake_database_recovered") == 1
    recovered = next(e for e in logs if e["event"] == "intake_database_recovered")
    assert recovered["failures"] >= 2
    # the database retry waited seconds, not the IMAP reconnect's 5 s doubling
    assert caught_up < 6
