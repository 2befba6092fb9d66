"""A refused SMTP login stops sending, is reported at once, and resumes after a reload.

Against a real aiosmtpd on loopback configured to refuse: 535 (wrong password),
no AUTH offered while a username is set, 530 to MAIL (AUTH required, none
configured), 534, STARTTLS not offered, an XOAUTH2 token refused; and the one that
is temporary: 454.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from structlog.testing import capture_logs
from support.dovecot import Dovecot
from support.smtp import SmtpServer
from support.xoauth2_smtp import XOAuth2SmtpServer

from triage.clock import FixedClock
from triage.config import Settings, load_config, parse_config
from triage.daemon import Daemon
from triage.errors import SendAuthError, SignInRequiredError
from triage.health import read_health
from triage.outbox import ComposedMail, build_mail, enqueue
from triage.services.dispatch import Dispatcher
from triage.smtp import OutgoingMail, SmtpSender, SmtpSessionError, make_sender
from triage.store import Database
from triage.store.models import OutboxMail

pytestmark = pytest.mark.smtp

T0 = datetime(2024, 5, 14, 9, 0, tzinfo=UTC)
PASSWORD = "s3cret-pw"
WRONG = "wrong-pw-4711"

RAW = (
    b"From: Office <inbox@example.com>\r\nTo: client@example.net\r\n"
    b"Subject: Re: hello [#7]\r\nMessage-ID: <ack.7.abc@example.com>\r\n\r\nThanks.\r\n"
)


def mail() -> OutgoingMail:
    return OutgoingMail("<ack.7.abc@example.com>", "inbox@example.com", ("c@example.net",), RAW, 7)


def send(sender: SmtpSender) -> None:
    async def go() -> None:
        try:
            await sender.send(mail())
        finally:
            await sender.aclose()

    asyncio.run(go())


def queue_mail(db: Database, count: int) -> list[str]:
    ids = []
    tag = uuid.uuid4().hex[:6]
    with db.session() as s:
        for i in range(count):
            mid = f"<ack.{i}.{tag}@example.com>"
            raw = build_mail(
                message_id=mid,
                sender=("Office", "inbox@example.com"),
                to=[("", f"client{i}@example.net")],
                subject=f"Re: question {i} [#{i}]",
                body="Thank you, we have it.\n",
                now=T0,
                auto_submitted="auto-replied",
            )
            enqueue(
                s,
                ComposedMail(mid, "inbox@example.com", (f"client{i}@example.net",), raw),
                kind="ack",
                now=T0,
                dedupe_key=f"test:{tag}:{i}",
            )
            ids.append(mid)
    return ids


def outbox(db: Database) -> list[OutboxMail]:
    with db.session() as s:
        return list(s.scalars(select(OutboxMail).order_by(OutboxMail.id)))


@pytest.fixture
def auth_server(dovecot: Dovecot) -> Iterator[SmtpServer]:
    tls = dovecot.dir / "tls"
    server = SmtpServer(str(tls / "cert.pem"), str(tls / "key.pem"), auth=("inbox", PASSWORD))
    server.start()
    yield server
    server.stop()


def password_sender(server: SmtpServer, dovecot: Dovecot, password: list[str]) -> SmtpSender:
    return SmtpSender(
        "localhost",
        server.port,
        security="starttls",
        ca_file=dovecot.cafile,
        username="inbox",
        password=lambda: password[0],
        timeout=5,
    )


# -- the sender: which refusals are final -------------------------------------------


def test_535_is_a_refused_login_naming_the_user_not_the_password(
    auth_server: SmtpServer, dovecot: Dovecot
) -> None:
    with capture_logs() as logs, pytest.raises(SendAuthError) as err:
        send(password_sender(auth_server, dovecot, [WRONG]))
    assert err.value.code == 535
    assert "inbox" in str(err.value)
    assert WRONG not in str(err.value)
    assert WRONG not in repr(logs)
    assert auth_server.sink.attempts == 0


def test_454_to_auth_is_temporary(dovecot: Dovecot) -> None:
    tls = dovecot.dir / "tls"
    server = SmtpServer(
        str(tls / "cert.pem"),
        str(tls / "key.pem"),
        auth_reply="454 4.7.0 Temporary authentication failure",
    )
    server.start()
    try:
        with pytest.raises(SmtpSessionError) as err:
            send(password_sender(server, dovecot, [PASSWORD]))
        assert not isinstance(err.value, SendAuthError)
        assert err.value.code == 454
    finally:
        server.stop()


def test_534_to_auth_is_a_refused_login(dovecot: Dovecot) -> None:
    tls = dovecot.dir / "tls"
    server = SmtpServer(
        str(tls / "cert.pem"),
        str(tls / "key.pem"),
        auth_reply="534 5.7.9 Application-specific password required",
    )
    server.start()
    try:
        with pytest.raises(SendAuthError) as err:
            send(password_sender(server, dovecot, [PASSWORD]))
        assert err.value.code == 534
    finally:
        server.stop()


def test_no_auth_offered_while_a_username_is_set_is_a_refused_login() -> None:
    server = SmtpServer()  # a local relay: no TLS, no AUTH
    server.start()
    try:
        sender = SmtpSender(
            "127.0.0.1",
            server.port,
            security="none",
            username="inbox",
            password=lambda: PASSWORD,
            timeout=5,
        )
        with pytest.raises(SendAuthError, match=r"offers no AUTH.*smtp\.username"):
            send(sender)
        assert server.sink.attempts == 0
        assert server.auth_attempts == []
    finally:
        server.stop()


def test_530_to_mail_without_a_configured_login_is_a_refused_login_not_a_failed_mail() -> None:
    server = SmtpServer(auth_required=True)
    server.start()
    try:
        sender = SmtpSender("127.0.0.1", server.port, security="none", timeout=5)
        with pytest.raises(SendAuthError, match=r"530") as err:
            send(sender)
        assert err.value.code == 530
        assert "smtp.username" in str(err.value)
        assert server.sink.messages == []
    finally:
        server.stop()


def test_starttls_required_but_not_offered_is_a_refused_configuration() -> None:
    server = SmtpServer()  # no certificate: no STARTTLS
    server.start()
    try:
        sender = SmtpSender("127.0.0.1", server.port, security="starttls", timeout=5)
        with pytest.raises(SendAuthError, match=r"does not offer STARTTLS"):
            send(sender)
        assert server.sink.attempts == 0
    finally:
        server.stop()


def test_xoauth2_token_refused_or_sign_in_gone_is_a_refused_login(dovecot: Dovecot) -> None:
    tls = dovecot.dir / "tls"
    server = XOAuth2SmtpServer(str(tls / "cert.pem"), str(tls / "key.pem"))
    server.start()
    try:

        def junk_token() -> str:
            return "not-a-valid-token"

        def signed_out() -> str:
            raise SignInRequiredError("the sign-in expired: run `triage auth login`")

        for token in (junk_token, signed_out):
            sender = SmtpSender(
                "localhost",
                server.port,
                security="starttls",
                ca_file=dovecot.cafile,
                username="inbox@example.com",
                auth="xoauth2",
                token=token,
                timeout=5,
            )
            with pytest.raises(SendAuthError):
                send(sender)
        assert server.sink.messages == []
    finally:
        server.stop()


def test_an_unset_password_variable_is_a_refused_login_naming_it(
    auth_server: SmtpServer, dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_SMTP_PW_UNSET", raising=False)
    config = tmp_path / "triage.toml"
    config.write_text(
        f'[smtp]\nhost = "localhost"\nport = {auth_server.port}\n'
        f'from_address = "Office <inbox@example.com>"\nca_file = "{dovecot.cafile}"\n'
        'username = "inbox"\npassword_env = "TEST_SMTP_PW_UNSET"\n'
    )
    sender = make_sender(load_config(config))
    assert isinstance(sender, SmtpSender)
    with pytest.raises(SendAuthError, match="TEST_SMTP_PW_UNSET"):
        send(sender)
    assert auth_server.auth_attempts == []


# -- the dispatcher: stop, report, resume ---------------------------------------------


def test_a_refused_login_stops_sending_reports_at_once_and_resumes_on_reload(
    sqlite_url: str, auth_server: SmtpServer, dovecot: Dovecot, tmp_path: Path
) -> None:
    db = Database.open(sqlite_url)
    password = [WRONG]
    try:
        ids = queue_mail(db, 3)
        d = Dispatcher(
            db,
            password_sender(auth_server, dovecot, password),
            clock=FixedClock(T0),
            rng=random.Random(7),
        )
        with capture_logs() as logs:
            stats = asyncio.run(d.run_once())
        assert stats.sent == 0
        logins = len(auth_server.auth_attempts)
        assert logins >= 1  # aiosmtplib tries each mechanism offered (PLAIN, LOGIN) once
        assert d.stopped
        assert [e["event"] for e in logs].count("smtp_login_refused") == 1
        rows = outbox(db)
        # no attempt counted, none given up: the mail is not at fault
        assert [(r.status, r.attempts, r.lease_until) for r in rows] == [("pending", 0, None)] * 3
        health = read_health(db, load_config_free(tmp_path), T0)
        assert not health.healthy
        [problem] = [p for p in health.problems if p.startswith("smtp:")]
        assert "sending stopped" in problem
        assert "535" in problem
        assert "SIGHUP" in problem
        assert WRONG not in problem
        assert health.http()[0] == 503

        # later passes (every second in the daemon) never log in again
        for _ in range(5):
            assert asyncio.run(d.run_once()).handled == 0
        assert len(auth_server.auth_attempts) == logins
        assert auth_server.sink.messages == []

        # a reload with the password still wrong: one more login check, still stopped
        d.resume()
        asyncio.run(d.run_once())
        assert d.stopped
        assert len(auth_server.auth_attempts) == 2 * logins
        assert not read_health(db, load_config_free(tmp_path), T0).healthy

        # fixed, then reloaded: sends everything once, and the alert is gone
        password[0] = PASSWORD
        d.resume()
        with capture_logs() as logs:
            assert asyncio.run(d.run_once()).sent == 3
        assert "smtp_sending_resumed" in [e["event"] for e in logs]
        assert not d.stopped
        got = auth_server.sink.wait_for(3)
        assert sorted(str(r.message["Message-ID"]) for r in got) == sorted(ids)
        assert [r.status for r in outbox(db)] == ["sent"] * 3
        assert read_health(db, load_config_free(tmp_path), T0).healthy
    finally:
        db.dispose()


def test_454_keeps_retrying_with_back_off_and_never_stops_sending(
    sqlite_url: str, dovecot: Dovecot
) -> None:
    tls = dovecot.dir / "tls"
    server = SmtpServer(
        str(tls / "cert.pem"),
        str(tls / "key.pem"),
        auth_reply="454 4.7.0 Temporary authentication failure",
    )
    server.start()
    db = Database.open(sqlite_url)
    try:
        queue_mail(db, 2)
        d = Dispatcher(
            db, password_sender(server, dovecot, [PASSWORD]), clock=FixedClock(T0), max_attempts=5
        )
        stats = asyncio.run(d.run_once())
        assert stats.deferred == 2
        assert not d.stopped
        assert [r.attempts for r in outbox(db)] == [1, 1]
        assert all(r.next_attempt_at > T0 for r in outbox(db))
        assert not [p for p in read_health(db, load_config_free(None), T0).problems if "smtp:" in p]
    finally:
        db.dispose()
        server.stop()


def test_a_restarted_dispatcher_checks_a_standing_refusal_once_and_clears_it(
    sqlite_url: str, auth_server: SmtpServer, dovecot: Dovecot
) -> None:
    db = Database.open(sqlite_url)
    try:
        queue_mail(db, 1)
        first = Dispatcher(db, password_sender(auth_server, dovecot, [WRONG]), clock=FixedClock(T0))
        asyncio.run(first.run_once())
        assert not read_health(db, load_config_free(None), T0).healthy
        # the daemon restarted with the right password (and nothing queued meanwhile
        # would clear the alert by sending): the start checks the login and clears it
        with db.session() as s:
            for row in s.scalars(select(OutboxMail)):
                row.status = "sent"
        second = Dispatcher(
            db, password_sender(auth_server, dovecot, [PASSWORD]), clock=FixedClock(T0)
        )
        asyncio.run(second.run_once())
        assert read_health(db, load_config_free(None), T0).healthy
    finally:
        db.dispose()


def test_sighup_rereads_the_smtp_section_and_resumes(
    sqlite_url: str, auth_server: SmtpServer, dovecot: Dovecot, tmp_path: Path
) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text(WRONG + "\n")
    secret.chmod(0o600)
    config = tmp_path / "triage.toml"

    def write_config(username: str) -> None:
        config.write_text(
            f'[database]\nurl = "{sqlite_url}"\n'
            f'[smtp]\nhost = "localhost"\nport = {auth_server.port}\n'
            f'from_address = "Office <inbox@example.com>"\nca_file = "{dovecot.cafile}"\n'
            f'username = "{username}"\npassword_file = "smtp-password"\ntimeout = "5s"\n'
        )

    write_config("wrong-user")
    db = Database.open(sqlite_url)
    try:
        queue_mail(db, 2)
        daemon = Daemon(load_config(config), db, clock=FixedClock(T0))
        assert daemon.dispatcher is not None
        asyncio.run(daemon.dispatcher.run_once())
        assert daemon.dispatcher.stopped
        # the user name and the password file are fixed; SIGHUP:
        write_config("inbox")
        secret.write_text(PASSWORD + "\n")
        daemon.reload()
        assert asyncio.run(daemon.dispatcher.run_once()).sent == 2
        assert auth_server.auth_attempts[-1] == "inbox"
        assert not [p for p in daemon.health().problems if p.startswith("smtp:")]
        # a broken config file is refused on SIGHUP: the sender in use is kept
        config.write_text("[smtp\n")
        with capture_logs() as logs:
            assert daemon.reload_smtp() is False
        assert "smtp_reload_failed" in [e["event"] for e in logs]
    finally:
        db.dispose()


def load_config_free(tmp_path: Path | None) -> Settings:
    """Settings with nothing to watch (health then reads only the database)."""
    return parse_config({}, source="test.toml", base_dir=tmp_path or Path())
