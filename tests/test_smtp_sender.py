"""SmtpSender against a real aiosmtpd: TLS modes, certificate checks, AUTH, failure classes."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support.dovecot import Dovecot
from support.smtp import SmtpServer

from triage.config import Settings, parse_config
from triage.errors import ConfigError, PermanentSendError, SendAuthError, TemporarySendError
from triage.smtp import (
    FolderSender,
    OutgoingMail,
    SmtpSender,
    SmtpSessionError,
    classify_reply,
    make_sender,
)

pytestmark = pytest.mark.smtp

RAW = (
    b"From: Office <inbox@example.com>\r\nTo: client@example.net\r\n"
    b"Subject: Re: hello [#7]\r\nMessage-ID: <ack.7.abc@example.com>\r\n\r\nThanks.\r\n"
)


def mail(rcpt: tuple[str, ...] = ("client@example.net",)) -> OutgoingMail:
    return OutgoingMail(
        message_id="<ack.7.abc@example.com>",
        mail_from="inbox@example.com",
        rcpt_to=rcpt,
        raw=RAW,
        outbox_id=7,
    )


def send(sender: SmtpSender, m: OutgoingMail | None = None):
    async def go():
        try:
            return await sender.send(m or mail())
        finally:
            await sender.aclose()

    return asyncio.run(go())


def settings(tmp_path: Path, **smtp: object) -> Settings:
    table = {"host": "localhost", "from_address": "Office <inbox@example.com>", **smtp}
    return parse_config({"smtp": table}, source="test.toml", base_dir=tmp_path)


@pytest.fixture
def plain_server() -> Iterator[SmtpServer]:
    """A server that offers no STARTTLS at all."""
    server = SmtpServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def tls_server(dovecot: Dovecot) -> Iterator[SmtpServer]:
    tls = dovecot.dir / "tls"
    server = SmtpServer(str(tls / "cert.pem"), str(tls / "key.pem"), implicit_tls=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def auth_server(dovecot: Dovecot) -> Iterator[SmtpServer]:
    tls = dovecot.dir / "tls"
    server = SmtpServer(str(tls / "cert.pem"), str(tls / "key.pem"), auth=("inbox", "s3cret-pw"))
    server.start()
    yield server
    server.stop()


def test_plain_delivery_goes_to_the_envelope_recipients_only(plain_server: SmtpServer) -> None:
    receipt = send(SmtpSender("127.0.0.1", plain_server.port, security="none"))
    got = plain_server.sink.wait_for(1)
    assert receipt.reply == "OK"
    assert [(r.mail_from, r.rcpt_tos) for r in got] == [
        ("inbox@example.com", ["client@example.net"])
    ]
    assert got[0].message["Message-ID"] == "<ack.7.abc@example.com>"
    assert not got[0].tls


def test_starttls_verified_against_the_test_ca(smtp_server: SmtpServer, dovecot: Dovecot) -> None:
    sender = SmtpSender("localhost", smtp_server.port, security="starttls", ca_file=dovecot.cafile)
    send(sender)
    got = smtp_server.sink.wait_for(1)
    assert len(got) == 1
    assert got[0].tls


def test_starttls_with_the_wrong_ca_fails_and_sends_nothing(smtp_server: SmtpServer) -> None:
    # Only the system CAs: they do not know the test CA.
    sender = SmtpSender("localhost", smtp_server.port, security="starttls")
    with pytest.raises(SmtpSessionError) as err:
        send(sender)
    assert isinstance(err.value, TemporarySendError)
    assert "certificate" in str(err.value).lower()
    time.sleep(0.2)
    assert smtp_server.sink.messages == []
    assert smtp_server.sink.attempts == 0


def test_starttls_asked_for_but_not_offered_never_sends_in_plaintext(
    plain_server: SmtpServer,
) -> None:
    sender = SmtpSender("127.0.0.1", plain_server.port, security="starttls")
    with pytest.raises(SendAuthError, match=r"(?i)starttls"):
        send(sender)
    assert plain_server.sink.attempts == 0


def test_implicit_tls(tls_server: SmtpServer, dovecot: Dovecot) -> None:
    send(SmtpSender("localhost", tls_server.port, security="tls", ca_file=dovecot.cafile))
    got = tls_server.sink.wait_for(1)
    assert len(got) == 1
    assert got[0].tls


def test_tls_verify_false_works_and_is_logged_each_connection(smtp_server: SmtpServer) -> None:
    sender = SmtpSender("127.0.0.1", smtp_server.port, security="starttls", tls_verify=False)
    with capture_logs() as logs:
        send(sender)
        send(sender)
    assert len(smtp_server.sink.wait_for(2)) == 2
    warnings = [e for e in logs if e["event"] == "smtp_tls_unverified"]
    assert len(warnings) == 2
    assert warnings[0]["log_level"] == "warning"


def test_auth_with_the_password_from_the_environment(
    auth_server: SmtpServer, dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PW", "s3cret-pw")
    s = settings(
        tmp_path,
        port=auth_server.port,
        security="starttls",
        ca_file=dovecot.cafile,
        username="inbox",
        password_env="TEST_SMTP_PW",
    )
    sender = make_sender(s)
    assert isinstance(sender, SmtpSender)
    send(sender)
    assert len(auth_server.sink.wait_for(1)) == 1
    assert auth_server.auth_attempts == ["inbox"]


def test_auth_password_from_a_file_relative_to_the_config(
    auth_server: SmtpServer, dovecot: Dovecot, tmp_path: Path
) -> None:
    (tmp_path / "smtp.pw").write_text("s3cret-pw\n")
    s = settings(
        tmp_path,
        port=auth_server.port,
        ca_file=dovecot.cafile,
        username="inbox",
        password_file="smtp.pw",
    )
    sender = make_sender(s)
    assert isinstance(sender, SmtpSender)
    send(sender)
    assert len(auth_server.sink.wait_for(1)) == 1


def test_refused_auth_is_a_refused_login_that_never_shows_the_password(
    auth_server: SmtpServer, dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TEST_SMTP_PW", "wrong-pw-123")
    s = settings(
        tmp_path,
        port=auth_server.port,
        ca_file=dovecot.cafile,
        username="inbox",
        password_env="TEST_SMTP_PW",
    )
    sender = make_sender(s)
    assert isinstance(sender, SmtpSender)
    with capture_logs() as logs, pytest.raises(SendAuthError) as err:
        send(sender)
    assert err.value.code == 535
    assert "wrong-pw-123" not in str(err.value)
    assert "wrong-pw-123" not in repr(logs)
    assert "wrong-pw-123" not in repr(sender)
    assert auth_server.sink.attempts == 0


def test_missing_password_variable_is_a_refused_login_naming_the_variable(
    auth_server: SmtpServer, dovecot: Dovecot, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TEST_SMTP_PW_UNSET", raising=False)
    s = settings(
        tmp_path,
        port=auth_server.port,
        ca_file=dovecot.cafile,
        username="inbox",
        password_env="TEST_SMTP_PW_UNSET",
    )
    sender = make_sender(s)
    assert isinstance(sender, SmtpSender)
    with pytest.raises(SendAuthError, match="TEST_SMTP_PW_UNSET"):
        send(sender)


def test_username_without_a_password_source_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"password_env or smtp\.password_file"):
        make_sender(settings(tmp_path, port=2525, username="inbox"))


def test_4xx_reply_is_temporary_and_5xx_permanent_with_the_servers_text(
    plain_server: SmtpServer,
) -> None:
    plain_server.sink.replies = [
        "451 4.3.0 Try again later",
        "550 5.1.1 <client@example.net>: Recipient address rejected",
    ]
    sender = SmtpSender("127.0.0.1", plain_server.port, security="none")
    with pytest.raises(TemporarySendError) as temp:
        send(sender)
    assert not isinstance(temp.value, SmtpSessionError)
    assert temp.value.code == 451
    assert str(temp.value) == "451 4.3.0 Try again later"
    with pytest.raises(PermanentSendError) as perm:
        send(sender)
    assert perm.value.code == 550
    assert "5.1.1 <client@example.net>: Recipient address rejected" in str(perm.value)
    assert plain_server.sink.messages == []


def test_one_session_carries_several_mails(plain_server: SmtpServer) -> None:
    sender = SmtpSender("127.0.0.1", plain_server.port, security="none")
    plain_server.sink.replies = ["451 4.3.0 busy"]

    async def go():
        outcomes = []
        for _ in range(3):
            try:
                await sender.send(mail())
                outcomes.append("sent")
            except TemporarySendError:
                outcomes.append("deferred")
        await sender.aclose()
        return outcomes

    assert asyncio.run(go()) == ["deferred", "sent", "sent"]
    assert len(plain_server.sink.wait_for(2)) == 2


def test_421_closing_the_session_is_tried_once_more_on_a_new_one(
    plain_server: SmtpServer,
) -> None:
    # e.g. Exchange's limit of mail per connection: 421 is "not accepted, closing"
    sender = SmtpSender("127.0.0.1", plain_server.port, security="none", timeout=5)
    plain_server.sink.replies = ["421 4.3.2 Too many messages for this session"]
    receipt = send(sender)
    assert receipt.reply.startswith("OK")
    assert plain_server.sink.attempts == 2
    assert len(plain_server.sink.wait_for(1)) == 1
    # twice in a row is temporary, as any 4xx
    plain_server.sink.replies = ["421 4.3.2 closing", "421 4.3.2 closing"]
    with pytest.raises(TemporarySendError) as err:
        send(sender)
    assert err.value.code == 421
    assert len(plain_server.sink.messages) == 1


def test_connection_refused_is_a_session_error(plain_server: SmtpServer) -> None:
    plain_server.stop()
    sender = SmtpSender("127.0.0.1", plain_server.port, security="none", timeout=5)
    with pytest.raises(SmtpSessionError) as err:
        send(sender)
    assert err.value.code is None
    assert str(plain_server.port) in str(err.value)


def test_a_server_that_never_greets_times_out() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # the kernel completes the handshake; nobody ever answers
        port = listener.getsockname()[1]
        sender = SmtpSender("127.0.0.1", port, security="none", timeout=0.5)
        started = time.monotonic()
        with pytest.raises(SmtpSessionError, match=r"(?i)timed out"):
            send(sender)
        assert time.monotonic() - started < 5


def test_classify_reply() -> None:
    assert isinstance(classify_reply(421, "closing"), TemporarySendError)
    assert isinstance(classify_reply(452, "mailbox full"), TemporarySendError)
    perm = classify_reply(554, "5.7.1 spam\n  detected")
    assert isinstance(perm, PermanentSendError)
    assert str(perm) == "554 5.7.1 spam detected"
    assert perm.code == 554


def test_make_sender_folder_mode(tmp_path: Path) -> None:
    s = parse_config(
        {"smtp": {"mode": "folder", "folder": "out", "from_address": "inbox@example.com"}},
        source="t",
        base_dir=tmp_path,
    )
    sender = make_sender(s)
    assert isinstance(sender, FolderSender)
    assert sender.folder == tmp_path / "out"


def test_make_sender_without_smtp_section_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"\[smtp\]"):
        make_sender(parse_config({}, source="t", base_dir=tmp_path))


def test_ended_sessions_leave_no_open_socket(auth_server: SmtpServer, dovecot: Dovecot) -> None:
    # A refused AUTH inside TLS: the session must be closed (close_notify exchanged)
    # before the event loop ends, or the socket leaks.
    def attempt(password: str) -> None:
        sender = SmtpSender(
            "localhost", auth_server.port, security="starttls", ca_file=dovecot.cafile,
            username="inbox", password=lambda: password, timeout=5,
        )  # fmt: skip
        with contextlib.suppress(SendAuthError):
            send(sender)

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        for password in ["bad"] * 8 + ["s3cret-pw"]:
            attempt(password)
        gc.collect()
    assert [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)] == []
    assert len(auth_server.sink.messages) == 1
