"""The test servers themselves: Dovecot speaks IMAP over TLS and IDLE; aiosmtpd records mail."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
from email.message import EmailMessage
from pathlib import Path

import aiosmtplib
import pytest
from imapclient import IMAPClient
from support.dovecot import Dovecot, ImapAccount, tls_client_context
from support.smtp import SmtpServer

pytestmark = pytest.mark.imap

ROOT = Path(__file__).resolve().parents[1]

RAW = (
    b"From: Kov\xc3\xa1cs <client@example.net>\r\nTo: inbox@example.test\r\n"
    b"Subject: hello\r\nMessage-ID: <t1@example.net>\r\n\r\nbody\r\n"
)


def test_append_then_fetch_over_implicit_tls(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    uid = dovecot.append(imap_account, RAW)
    ctx = tls_client_context(imap_account.cafile)
    with IMAPClient("127.0.0.1", port=imap_account.tls_port, ssl=True, ssl_context=ctx) as c:
        c.login(imap_account.username, imap_account.password)
        info = c.select_folder("INBOX", readonly=True)
        assert info[b"EXISTS"] == 1
        data = c.fetch([uid], ["BODY.PEEK[]", "FLAGS"])
        assert data[uid][b"BODY[]"] == RAW
        assert b"\\Seen" not in data[uid][b"FLAGS"]


def test_starttls_verifies_the_test_certificate(imap_account: ImapAccount) -> None:
    with IMAPClient("localhost", port=imap_account.port, ssl=False) as c:
        c.starttls(tls_client_context(imap_account.cafile))
        c.login(imap_account.username, imap_account.password)
        assert c.select_folder("INBOX")[b"EXISTS"] == 0
    with (
        IMAPClient("localhost", port=imap_account.port, ssl=False) as c,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        c.starttls(ssl.create_default_context())  # the system CAs do not know the test CA


def test_idle_reports_an_append(dovecot: Dovecot, imap_account: ImapAccount) -> None:
    c = dovecot.client(imap_account)
    try:
        c.select_folder("INBOX")
        c.idle()
        dovecot.append(imap_account, RAW)
        responses = c.idle_check(timeout=10)
        c.idle_done()
        assert any(r[1] == b"EXISTS" for r in responses if isinstance(r, tuple) and len(r) > 1)
    finally:
        c.logout()


def test_smtp_sink_records_mail_over_starttls(
    smtp_server: SmtpServer, imap_account: ImapAccount
) -> None:
    msg = EmailMessage()
    msg["From"] = "inbox@example.test"
    msg["To"] = "client@example.net"
    msg["Subject"] = "Re: hello"
    msg.set_content("ok")
    ctx = tls_client_context(imap_account.cafile)
    asyncio.run(
        aiosmtplib.send(
            msg, hostname="localhost", port=smtp_server.port, start_tls=True, tls_context=ctx
        )
    )
    got = smtp_server.sink.wait_for(1)
    assert len(got) == 1
    assert got[0].rcpt_tos == ["client@example.net"]
    assert got[0].message["Subject"] == "Re: hello"


def test_smtp_sink_scripted_temporary_failure(smtp_server: SmtpServer) -> None:
    smtp_server.sink.replies = ["451 4.3.0 try again later"]
    msg = EmailMessage()
    msg["From"] = "inbox@example.test"
    msg["To"] = "client@example.net"
    msg.set_content("x")
    with pytest.raises(aiosmtplib.SMTPDataError) as err:
        asyncio.run(
            aiosmtplib.send(msg, hostname="127.0.0.1", port=smtp_server.port, start_tls=False)
        )
    assert err.value.code == 451
    asyncio.run(aiosmtplib.send(msg, hostname="127.0.0.1", port=smtp_server.port, start_tls=False))
    assert len(smtp_server.sink.messages) == 1


def test_the_dovecot_fixture_serves_imap_only(dovecot: Dovecot) -> None:
    """Issue 14: the fixture configured LMTP, which nothing uses; without dovecot-lmtpd
    every IMAP test errored. The config now names the IMAP protocol alone."""
    conf = (dovecot.dir / "dovecot.conf").read_text(encoding="utf-8")
    assert "protocols = imap\n" in conf
    assert "lmtp" not in conf


def test_the_test_command_checks_each_dovecot_program(tmp_path: Path) -> None:
    """scripts/test installs dovecot-imapd when any program the tests run is missing, not
    only when ``dovecot`` is (a machine with dovecot-core alone had every IMAP test error)."""
    script = ROOT / "scripts" / "dovecot-binaries"
    installed = subprocess.run([script], capture_output=True, text=True, check=False)
    assert (installed.returncode, installed.stdout) == (0, "")
    empty = tmp_path / "libexec"
    empty.mkdir()
    env = {**os.environ, "DOVECOT_LIBEXEC": str(empty)}
    core_only = subprocess.run([script], capture_output=True, text=True, check=False, env=env)
    assert core_only.returncode == 1
    assert core_only.stdout.split() == [str(empty / "imap"), str(empty / "imap-login")]
    assert "dovecot-binaries" in (ROOT / "scripts" / "test").read_text(encoding="utf-8")
    assert "lmtpd" not in (ROOT / "scripts" / "test").read_text(encoding="utf-8")
