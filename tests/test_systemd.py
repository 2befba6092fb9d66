"""systemd Type=notify: READY, STATUS, STOPPING, and WATCHDOG=1 only while the loops progress.

The notifications are read from a real AF_UNIX datagram socket named by
``$NOTIFY_SOCKET`` (what systemd does). The end-to-end tests run ``triage run``
as a real process against the real Dovecot and aiosmtpd, and make a loop hang
for real: the IMAP connection goes through a loopback proxy that stops
forwarding (with a long imap.timeout, the watcher blocks on its next command),
or the SMTP server is a listener that accepts and never greets (with a long
smtp.timeout, the dispatcher blocks in its connect).
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path

import pytest
from support.daemonproc import DaemonProcess, daemon_config, write_config
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import message
from support.proxy import BlackholeProxy
from support.smtp import SmtpServer

from triage.liveness import Liveness
from triage.systemd import SystemdNotifier, watchdog_interval
from triage.watchdog import Watchdog


class NotifySocket:
    """A datagram socket standing in for systemd's notification socket."""

    def __init__(self, path: Path | None = None, *, abstract: str = "") -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.sock.bind("\0" + abstract)
            self.address = "@" + abstract
        else:
            assert path is not None
            self.sock.bind(str(path))
            self.address = str(path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, dict[str, str]]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if line)
            with self._lock:
                self.messages.append((time.monotonic(), fields))

    def with_key(self, key: str, *, since: float = 0.0) -> list[dict[str, str]]:
        with self._lock:
            return [m for t, m in self.messages if key in m and t >= since]

    def wait_for(self, key: str, timeout: float, *, count: int = 1, since: float = 0.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.with_key(key, since=since)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"no {count} x {key} within {timeout} s: {self.messages}")
            time.sleep(0.05)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    sock = NotifySocket(tmp_path / "notify")
    try:
        yield sock
    finally:
        sock.close()


# -- the notifier alone ------------------------------------------------------------------


def test_notifier_sends_each_message_as_one_datagram(notify_socket: NotifySocket) -> None:
    notifier = SystemdNotifier(notify_socket.address)
    assert notifier.enabled
    assert notifier.ready("running: watching INBOX")
    assert notifier.status("two\nlines")
    assert notifier.watchdog()
    assert notifier.stopping()
    notify_socket.wait_for("STOPPING", 5)
    sent = [m for _, m in notify_socket.messages]
    assert sent == [
        {"READY": "1", "STATUS": "running: watching INBOX"},
        {"STATUS": "two lines"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1"},
    ]


def test_notifier_reaches_an_abstract_socket() -> None:
    sock = NotifySocket(abstract=f"triage-test-{time.monotonic_ns()}")
    try:
        assert SystemdNotifier(sock.address).watchdog()
        sock.wait_for("WATCHDOG", 5)
    finally:
        sock.close()


def test_notifier_outside_systemd_does_nothing(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    notifier = SystemdNotifier()
    assert not notifier.enabled
    assert not notifier.ready()
    # a socket that went away: the message is dropped, nothing raises
    assert not SystemdNotifier(str(tmp_path / "gone")).watchdog()


def test_watchdog_interval_is_half_the_period_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "20000000"}) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "42"}, pid=42) == 10.0
    assert watchdog_interval({"WATCHDOG_USEC": "20000000", "WATCHDOG_PID": "41"}, pid=42) == 0.0
    assert watchdog_interval({}) == 0.0
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) == 0.0


# -- liveness and the watchdog's decision ------------------------------------------------


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_loop_polling_its_stop_event_is_alive_and_one_that_stops_polling_stalls() -> None:
    clock = FakeMonotonic()
    liveness = Liveness(clock)
    liveness.expect("imap-INBOX", 300)
    liveness.expect("dispatch", 240)
    stop = liveness.thread_event()

    def poll_as(name: str) -> None:
        thread = threading.Thread(target=stop.is_set, name=name)
        thread.start()
        thread.join()

    clock.now += 200
    poll_as("imap-INBOX")
    clock.now += 200  # INBOX polled 200 s ago, dispatch never: 400 s
    assert [s.loop for s in liveness.stalled()] == ["dispatch"]
    poll_as("dispatch")
    poll_as("imap-INBOX")
    poll_as("some-other-thread")  # beats of loops nobody expects are ignored
    assert liveness.stalled() == []
    clock.now += 301
    stalls = liveness.stalled()
    assert [s.loop for s in stalls] == ["dispatch", "imap-INBOX"]
    assert stalls[1].describe() == "imap-INBOX: no progress for 301 s (limit 300 s)"


def test_a_thread_waiting_on_its_stop_event_beats_while_it_waits() -> None:
    liveness = Liveness()
    stop = liveness.thread_event()
    liveness.expect("backoff", 1.5)
    thread = threading.Thread(target=stop.wait, args=(3.5,), name="backoff")
    thread.start()
    try:
        time.sleep(2.5)  # longer than the limit: only beats during the wait keep it alive
        assert liveness.stalled() == []
    finally:
        stop.set()
        thread.join()
    assert stop.wait(0)


def test_watchdog_pings_only_while_no_loop_is_stalled(notify_socket: NotifySocket) -> None:
    clock = FakeMonotonic()
    liveness = Liveness(clock)
    liveness.expect("sla-watch", 60)
    watchdog = Watchdog(
        liveness, SystemdNotifier(notify_socket.address), interval=5, running_status="running"
    )
    assert watchdog.check() == []
    clock.now += 61
    assert [s.loop for s in watchdog.check()] == ["sla-watch"]
    assert [s.loop for s in watchdog.check()] == ["sla-watch"]
    liveness.beat("sla-watch")
    assert watchdog.check() == []
    notify_socket.wait_for("WATCHDOG", 5, count=2)
    time.sleep(0.3)
    sent = [m for _, m in notify_socket.messages]
    assert sent == [
        {"WATCHDOG": "1"},
        # one STATUS for the stall, not one per check; no ping meanwhile
        {"STATUS": "stalled: sla-watch: no progress for 61 s (limit 60 s) (watchdog withheld)"},
        {"STATUS": "running"},
        {"WATCHDOG": "1"},
    ]
    assert watchdog.pings == 2


# -- the daemon under a (stand-in) systemd -------------------------------------------------


@pytest.fixture
def imap_proxy(imap_account: ImapAccount) -> Iterator[BlackholeProxy]:
    proxy = BlackholeProxy(imap_account.host, imap_account.port).start()
    try:
        yield proxy
    finally:
        proxy.stop()


class Tarpit:
    """A TCP listener that accepts connections and never says anything (a hung SMTP server)."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted.append(conn)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        for conn in self.accepted:
            with contextlib.suppress(OSError):
                conn.close()
        self.listener.close()


def _fresh(n: int, subject: str) -> bytes:
    """A client mail dated now (so it is acknowledged)."""
    return message(n, subject=subject, date=format_datetime(datetime.now(UTC)))


def _start(
    tmp_path: Path,
    notify_socket: NotifySocket,
    account: ImapAccount,
    smtp_port: int,
    *,
    imap: dict[str, object],
    smtp: dict[str, object] | None = None,
    stall: float = 4,
) -> DaemonProcess:
    data = daemon_config(
        account,
        smtp_port,
        f"sqlite:///{tmp_path / 'triage.db'}",
        tmp_path,
        imap=imap,
        smtp=smtp or {},
        monitoring={"enabled": False, "stall_timeout": stall},
    )
    config = write_config(tmp_path / "triage.toml", data)
    return DaemonProcess(
        config,
        tmp_path / "daemon.log",
        env={"NOTIFY_SOCKET": notify_socket.address, "WATCHDOG_USEC": "1000000"},
    )


@pytest.mark.imap
@pytest.mark.smtp
@pytest.mark.slow
def test_daemon_stops_pinging_when_its_imap_thread_hangs(  # noqa: PLR0917 - fixtures
    tmp_path: Path,
    notify_socket: NotifySocket,
    dovecot: Dovecot,
    imap_account: ImapAccount,
    imap_proxy: BlackholeProxy,
    smtp_server: SmtpServer,
) -> None:
    daemon = _start(
        tmp_path,
        notify_socket,
        imap_account,
        smtp_server.port,
        # a long command timeout: a silent server makes the watcher hang, not reconnect
        imap={"port": imap_proxy.port, "timeout": 600, "fallback_poll": 1},
    )
    try:
        notify_socket.wait_for("READY", 60)
        ready = notify_socket.with_key("READY")[0]
        assert ready["STATUS"] == "running: watching INBOX"
        daemon.wait_event("daemon_started")
        # pinging every half WATCHDOG_USEC while everything runs (mail flowing too)
        dovecot.append(imap_account, _fresh(1, "before the hang"))
        daemon.wait_event("message_stored", 30)
        since = time.monotonic()
        notify_socket.wait_for("WATCHDOG", 10, count=4, since=since)

        imap_proxy.blackhole()  # the next command of the watcher never gets its answer
        stalled = daemon.wait_event("loop_stalled", 30)
        assert stalled[0]["loop"] == "imap-INBOX"
        assert stalled[0]["watchdog"] is True
        notify_socket.wait_for("STATUS", 5, since=since)
        status = [m["STATUS"] for m in notify_socket.with_key("STATUS", since=since)]
        assert any(s.startswith("stalled: imap-INBOX: no progress for") for s in status)
        # no ping for several intervals (systemd would now kill and restart the service)
        quiet_from = time.monotonic()
        time.sleep(3)
        assert notify_socket.with_key("WATCHDOG", since=quiet_from) == []
    finally:
        exit_status, _ = daemon.terminate()
    assert exit_status == 0
    assert notify_socket.with_key("STOPPING")


@pytest.mark.imap
@pytest.mark.slow
def test_daemon_stops_pinging_when_its_dispatcher_hangs(
    tmp_path: Path, notify_socket: NotifySocket, dovecot: Dovecot, imap_account: ImapAccount
) -> None:
    tarpit = Tarpit()
    daemon = _start(
        tmp_path,
        notify_socket,
        imap_account,
        tarpit.port,
        imap={},
        smtp={"timeout": 600},
    )
    try:
        notify_socket.wait_for("READY", 60)
        since = time.monotonic()
        notify_socket.wait_for("WATCHDOG", 10, count=2, since=since)
        # a client mail: its acknowledgment makes the dispatcher connect to the tarpit
        dovecot.append(imap_account, _fresh(2, "Invoice question"))
        stalled = daemon.wait_event("loop_stalled", 60)
        assert stalled[0]["loop"] == "dispatch"
        quiet_from = time.monotonic()
        time.sleep(3)
        assert notify_socket.with_key("WATCHDOG", since=quiet_from) == []
        assert tarpit.accepted
    finally:
        daemon.kill()  # a dispatcher stuck in connect need not stop politely
        tarpit.close()


# -- the unit file -------------------------------------------------------------------------

UNIT = Path(__file__).resolve().parents[1] / "deploy" / "triage.service"


def _unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.startswith(("#", "[")):
            key, value = line.split("=", 1)
            settings.setdefault(key, []).append(value)
    return settings


def test_the_unit_is_type_notify_with_a_watchdog_and_hardening() -> None:
    unit = _unit_settings()
    assert unit["Type"] == ["notify"]
    assert unit["NotifyAccess"] == ["main"]
    assert unit["WatchdogSec"]
    assert unit["Restart"] == ["on-failure"]
    for key, value in {
        "NoNewPrivileges": "true",
        "ProtectSystem": "strict",
        "ProtectHome": "true",
        "PrivateTmp": "true",
        "PrivateDevices": "true",
        "RestrictSUIDSGID": "true",
        "UMask": "0077",
    }.items():
        assert unit[key] == [value], key
    assert unit["CapabilityBoundingSet"] == [""]
    # the only writable place is the state directory (database, token cache, backups)
    assert unit["ReadWritePaths"] == ["/var/lib/triage"]


@pytest.mark.parametrize("name", ["triage.service", "triage-backup.service", "triage-backup.timer"])
def test_systemd_accepts_the_units(tmp_path: Path, name: str) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    for each in ("triage.service", "triage-backup.service", "triage-backup.timer"):
        # the program paths must exist for verify; everything else is checked as shipped
        text = (UNIT.parent / each).read_text(encoding="utf-8")
        (tmp_path / each).write_text(text.replace("/opt/triage/bin/triage", "/bin/true"))
    done = subprocess.run(
        [analyze, "verify", str(tmp_path / name)], capture_output=True, text=True, check=False
    )
    problems = [
        line
        for line in (done.stdout + done.stderr).splitlines()
        if name in line and "User" not in line
    ]
    assert done.returncode == 0, done.stderr
    assert problems == []


@pytest.mark.imap
@pytest.mark.postgres
def test_a_folder_watched_under_a_worker_lease_counts_as_progress(
    pg_url: str, dovecot: Dovecot, imap_account: ImapAccount, tmp_path: Path
) -> None:
    """With PostgreSQL worker leases each folder thread runs its watcher with a stop event
    of its own while it holds the lease: polls of that one must keep the loop alive too
    (else a healthy daemon would lose its watchdog and be restarted every few minutes)."""
    from support.mailtest import settings_for  # noqa: PLC0415

    from triage.services.intake import Poller  # noqa: PLC0415
    from triage.services.workers import WorkerLeases  # noqa: PLC0415
    from triage.store import Database  # noqa: PLC0415

    settings = settings_for(imap_account, pg_url, tmp_path, folders=["INBOX", "Orders"])
    dovecot.append(imap_account, _fresh(1, "hello"), folder="Orders")
    db = Database.open(pg_url)
    liveness = Liveness()
    stop = liveness.thread_event()
    poller = Poller(settings, db, leases=WorkerLeases(db, name="the-only-worker"))
    assert poller.leases is not None
    assert poller.leases.enabled
    for folder in ("INBOX", "Orders"):
        liveness.expect(f"imap-{folder}", 3.0)
    thread = threading.Thread(target=poller.run, args=(stop,))
    thread.start()
    try:
        deadline = time.monotonic() + 12
        while time.monotonic() < deadline:  # well past the 3 s limit, holding both leases
            assert liveness.stalled() == []
            time.sleep(0.5)
    finally:
        stop.set()
        thread.join(30)
        db.dispose()
