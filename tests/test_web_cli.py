"""`triage user add|passwd|disable`, `triage web` and `triage run` serving the page."""

from __future__ import annotations

import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from support.daemonproc import DaemonProcess, daemon_config, triage_command, write_config
from support.dovecot import ImapAccount
from support.ports import free_port
from support.smtp import SmtpServer
from support.tickets import write_config as write_ticket_config

from triage.accounts import authenticate
from triage.cli.main import main
from triage.clock import utcnow
from triage.errors import LoginError
from triage.store import Database
from triage.store.models import User, WebSession


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_ticket_config(tmp_path / "triage.toml", f"sqlite:///{tmp_path / 't.db'}")
    Database.open(f"sqlite:///{tmp_path / 't.db'}").dispose()
    return path


def run(config: Path, *args: str, stdin: str = "") -> tuple[int, str]:
    runner = CliRunner()
    with runner.isolation(input=stdin) as (out, err, *_):
        code = main(["--config", str(config), *args])
    return code, out.getvalue().decode() + err.getvalue().decode()


def users(config: Path) -> dict[str, User]:
    db = Database.open(f"sqlite:///{config.parent / 't.db'}", migrate=False)
    with db.read_session() as session:
        found = {u.name: u for u in session.scalars(select(User))}
        session.expunge_all()  # keep the loaded rows readable after the read's rollback
    db.dispose()
    return found


def test_user_add_reads_the_password_from_stdin_and_hashes_it_with_argon2id(
    config: Path,
) -> None:
    code, out = run(
        config, "user", "add", "anna", "--role", "assistant", stdin="s3cret pass word\n"
    )
    assert code == 0, out
    assert "user anna added (assistant)" in out
    anna = users(config)["anna"]
    assert anna.password_hash.startswith("$argon2id$")
    assert "s3cret" not in anna.password_hash
    db = Database.open(f"sqlite:///{config.parent / 't.db'}", migrate=False)
    with db.session() as session:
        account = authenticate(session, "anna", "s3cret pass word", address="::1", now=utcnow())
    assert account.role == "assistant"


def test_user_add_refuses_a_password_in_argv_and_names_not_in_the_team(config: Path) -> None:
    code, out = run(config, "user", "add", "anna", "--password", "x" * 12)
    assert code == 2
    assert "No such option" in out
    code, out = run(config, "user", "add", "zoe", stdin="long enough password\n")
    assert code == 2
    assert "'zoe' is not in [team.assistants] (assistants: anna, bela)" in out
    code, out = run(config, "user", "add", "olga", "--role", "owner", stdin="short\n")
    assert code == 2
    assert "at least 10 characters" in out
    code, out = run(config, "user", "add", "olga", "--role", "owner", stdin="")
    assert code == 2
    assert "no password on stdin" in out
    assert users(config) == {}
    code, out = run(config, "user", "add", "olga", "--role", "owner", stdin="owner password 1\n")
    assert code == 0, out
    code, out = run(config, "user", "add", "OLGA", "--role", "owner", stdin="owner password 1\n")
    assert code == 2
    assert "exists" in out


def test_user_unlock_lets_a_throttled_name_log_in_at_once(config: Path) -> None:
    from triage.accounts.users import MAX_FAILURES_PER_NAME  # noqa: PLC0415

    run(config, "user", "add", "anna", stdin="first password\n")
    db = Database.open(f"sqlite:///{config.parent / 't.db'}", migrate=False)
    now = utcnow()
    for _ in range(MAX_FAILURES_PER_NAME):
        with db.session() as session, pytest.raises(LoginError):
            authenticate(session, "anna", "a wrong guess", address="::1", now=now)
    with db.session() as session, pytest.raises(LoginError) as throttled:
        authenticate(session, "anna", "first password", address="::1", now=now)
    assert throttled.value.retry_after > 0
    code, out = run(config, "user", "unlock", "anna")
    assert code == 0, out
    assert f"anna: {MAX_FAILURES_PER_NAME} failed logins forgotten" in out
    with db.session() as session:
        assert (
            authenticate(session, "anna", "first password", address="::1", now=now).name == "anna"
        )


def test_passwd_and_disable_end_the_users_sessions(config: Path) -> None:
    run(config, "user", "add", "anna", stdin="first password\n")
    db = Database.open(f"sqlite:///{config.parent / 't.db'}", migrate=False)

    def log_in() -> None:
        from datetime import timedelta  # noqa: PLC0415

        from triage.accounts import start_session  # noqa: PLC0415

        with db.session() as session:
            start_session(session, users(config)["anna"].id, now=utcnow(), lifetime=timedelta(1))

    def sessions() -> int:
        with db.read_session() as session:
            return len(session.scalars(select(WebSession)).all())

    log_in()
    assert sessions() == 1
    code, out = run(config, "user", "passwd", "anna", stdin="second password\n")
    assert code == 0, out
    assert sessions() == 0
    log_in()
    code, out = run(config, "user", "disable", "anna")
    assert code == 0, out
    assert sessions() == 0
    assert users(config)["anna"].disabled
    with db.session() as session, pytest.raises(LoginError):
        authenticate(session, "anna", "second password", address="::1", now=utcnow())
    code, out = run(config, "user", "passwd", "nobody", stdin="second password\n")
    assert code == 2
    assert "no user 'nobody'" in out
    db.dispose()


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - loopback
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, ""


def _wait_for_page(url: str, process: subprocess.Popen[bytes] | None = None) -> str:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise AssertionError(f"the server exited with {process.returncode}")
        try:
            status, text = _get(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
            continue
        assert status == 200
        return text
    raise AssertionError(f"{url} did not answer")


def test_triage_web_serves_the_login_page_on_the_given_port(config: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [*triage_command(), "--config", str(config), "web", "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        text = _wait_for_page(f"http://127.0.0.1:{port}/login", process)
        assert "Example Office" in text
        status, _ = _get(f"http://127.0.0.1:{port}/")
        assert status == 200  # redirected to the login page
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


@pytest.mark.imap
@pytest.mark.smtp
def test_triage_run_serves_the_page_when_web_is_enabled(
    imap_account: ImapAccount, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    port = free_port()
    data = daemon_config(
        imap_account,
        smtp_server.port,
        f"sqlite:///{tmp_path / 'run.db'}",
        tmp_path,
        web={"enabled": True, "port": port},
    )
    config = write_config(tmp_path / "run.toml", data)
    daemon = DaemonProcess(config, tmp_path / "run.log")
    try:
        daemon.wait_event("daemon_started")
        daemon.wait_event("web_started")
        text = _wait_for_page(f"http://127.0.0.1:{port}/login")
        assert "<form" in text
    finally:
        code, _seconds = daemon.terminate()
    assert code == 0, daemon.tail()
    assert daemon.events("web_stopped")


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port another socket listens on for the test's length."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_triage_web_on_a_taken_port_is_one_line_and_exit_2(config: Path, taken_port: int) -> None:
    code, out = run(config, "web", "--port", str(taken_port))
    assert code == 2
    assert f"127.0.0.1:{taken_port}" in out
    assert "Traceback" not in out
    assert len(out.strip().splitlines()) == 1, out


def test_demo_serve_on_a_taken_port_fails_before_the_demo(tmp_path: Path, taken_port: int) -> None:
    demo = ["demo", "--dir", str(tmp_path / "demo"), "--serve", "--port", str(taken_port)]
    process = subprocess.run(
        [*triage_command(), *demo],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert process.returncode == 2, process.stdout + process.stderr
    assert f"127.0.0.1:{taken_port}" in process.stderr
    assert "Traceback" not in process.stderr
    assert "Log in as" not in process.stdout  # no logins for a server that never starts
    assert not (tmp_path / "demo").exists()  # and none of the demo's work


@pytest.mark.imap
@pytest.mark.smtp
def test_triage_run_with_web_on_a_taken_port_fails_at_once(
    imap_account: ImapAccount, smtp_server: SmtpServer, tmp_path: Path, taken_port: int
) -> None:
    data = daemon_config(
        imap_account,
        smtp_server.port,
        f"sqlite:///{tmp_path / 'run.db'}",
        tmp_path,
        web={"enabled": True, "port": taken_port},
    )
    config = write_config(tmp_path / "run.toml", data)
    code, out = run(config, "run")
    assert code == 2
    assert f"127.0.0.1:{taken_port}" in out
    assert "Traceback" not in out


def test_the_served_address_is_the_origin_of_links_in_mail(config: Path) -> None:
    from triage.config import load_config  # noqa: PLC0415
    from triage.web.serve import build  # noqa: PLC0415

    settings = load_config(config)
    db = Database.open(settings.database_url)
    try:
        app, _ = build(settings, db, port=8142)
        assert app.state.web.settings.web.origin() == "http://127.0.0.1:8142"
        explicit = settings.model_copy(
            update={"web": settings.web.model_copy(update={"base_url": "https://desk.example"})}
        )
        app, _ = build(explicit, db, port=8142)
        assert app.state.web.settings.web.origin() == "https://desk.example"  # set: it wins
    finally:
        db.dispose()
