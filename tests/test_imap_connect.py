"""ImapConnector against the real Dovecot: TLS, STARTTLS, verification, LOGIN, XOAUTH2."""

from __future__ import annotations

import logging
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from structlog.testing import capture_logs
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import imap_settings
from support.oauth2 import KEY, OAuth2Dovecot, mint_token

from triage.errors import ConfigError, MailboxAuthError, MailboxError
from triage.imap import ImapConnector

pytestmark = pytest.mark.imap


def _other_ca(tmp_path: Path) -> str:
    """A self-signed certificate that did NOT sign the server's certificate."""
    cert = tmp_path / "other-ca.pem"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "ec",
            "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
            "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout", str(tmp_path / "other-key.pem"), "-out", str(cert),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return str(cert)


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_verified_tls_connects_and_logs_in(
    imap_account: ImapAccount, tmp_path: Path, security: str
) -> None:
    client = ImapConnector(imap_settings(imap_account, tmp_path, security=security)).connect()
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
        tls_socket = client.socket()
        assert tls_socket.version() is not None  # an SSLSocket: the session is encrypted
        assert tls_socket.getpeercert()["subject"] == ((("commonName", "localhost"),),)
    finally:
        client.logout()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_the_wrong_ca_is_a_clear_mailbox_error_never_a_downgrade(
    imap_account: ImapAccount, tmp_path: Path, security: str
) -> None:
    settings = imap_settings(imap_account, tmp_path, security=security, ca_file=_other_ca(tmp_path))
    with pytest.raises(MailboxError) as caught:
        ImapConnector(settings).connect()
    assert not isinstance(caught.value, MailboxAuthError)
    assert "certificate is not trusted" in str(caught.value)
    assert "imap.ca_file" in str(caught.value)


def test_tls_without_our_ca_fails_against_a_self_signed_server(
    imap_account: ImapAccount, tmp_path: Path
) -> None:
    settings = imap_settings(imap_account, tmp_path, security="tls", ca_file="")
    with pytest.raises(MailboxError, match="not trusted"):
        ImapConnector(settings).connect()


def test_tls_verify_false_connects_and_warns_every_time(
    imap_account: ImapAccount, tmp_path: Path
) -> None:
    settings = imap_settings(imap_account, tmp_path, security="tls", ca_file="", tls_verify=False)
    connector = ImapConnector(settings)
    with capture_logs() as logs:
        for _ in range(2):
            connector.connect().logout()
    warnings = [e for e in logs if e["event"] == "imap_tls_unverified"]
    assert len(warnings) == 2
    assert all(e["log_level"] == "warning" for e in warnings)


def test_wrong_password_is_an_auth_error(imap_account: ImapAccount, tmp_path: Path) -> None:
    settings = imap_settings(imap_account, tmp_path)
    Path(settings.password_file).write_text("not-the-password\n")
    with pytest.raises(MailboxAuthError) as caught:
        ImapConnector(settings).connect()
    assert "not-the-password" not in str(caught.value)
    assert imap_account.username in str(caught.value)


def test_password_from_env_and_never_logged(
    imap_account: ImapAccount,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("TRIAGE_TEST_IMAP_PW", imap_account.password)
    settings = imap_settings(
        imap_account, tmp_path, password_file="", password_env="TRIAGE_TEST_IMAP_PW"
    )
    caplog.set_level(logging.DEBUG)
    caplog.set_level(logging.DEBUG, logger="imapclient")
    with capture_logs() as logs:
        client = ImapConnector(settings).connect()
        client.select_folder("INBOX")
        client.logout()
    assert imap_account.password not in caplog.text
    assert imap_account.password not in repr(logs)
    monkeypatch.delenv("TRIAGE_TEST_IMAP_PW")
    with pytest.raises(ConfigError, match="TRIAGE_TEST_IMAP_PW is not set"):
        ImapConnector(settings).connect()


@pytest.mark.parametrize("security", ["tls", "starttls"])
def test_a_hungarian_password_logs_in_with_authenticate_plain(
    dovecot: Dovecot, tmp_path: Path, security: str
) -> None:
    """LOGIN cannot carry "árvíztűrő"; AUTHENTICATE PLAIN (RFC 4616, UTF-8) can."""
    account = dovecot.add_user(password="árvíztűrő-tükörfúrógép-ő")
    client = ImapConnector(imap_settings(account, tmp_path, security=security)).connect()
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()


def test_a_wrong_non_ascii_password_is_refused_without_showing_it(
    imap_account: ImapAccount, tmp_path: Path
) -> None:
    settings = imap_settings(imap_account, tmp_path)
    Path(settings.password_file).write_text("pässwörd-ő\n", encoding="utf-8")
    with pytest.raises(MailboxAuthError) as caught:
        ImapConnector(settings).connect()
    assert not {"ä", "ö", "ő"} & set(str(caught.value))


def test_unreachable_server_is_a_mailbox_error(tmp_path: Path, imap_account: ImapAccount) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed_port = s.getsockname()[1]
    settings = imap_settings(imap_account, tmp_path, port=closed_port)
    with pytest.raises(MailboxError, match="connection failed"):
        ImapConnector(settings).connect()


def test_missing_ca_file_is_a_config_error(imap_account: ImapAccount, tmp_path: Path) -> None:
    settings = imap_settings(
        imap_account, tmp_path, security="tls", ca_file=str(tmp_path / "nope.pem")
    )
    with pytest.raises(ConfigError, match=r"imap\.ca_file: .*nope\.pem does not exist"):
        ImapConnector(settings).connect()


class _NoStartTlsServer:
    """A server whose CAPABILITY lacks STARTTLS (a misconfigured or stripped server).

    Dovecot always offers STARTTLS on its plain port, so this one fault needs a fake;
    it records every command so the test can show no LOGIN was ever sent.
    """

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received: list[bytes] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            conn.sendall(b"* OK fake IMAP ready\r\n")
            buf = b""
            while True:
                data = conn.recv(4096)
                if not data:
                    return
                buf += data
                while b"\r\n" in buf:
                    line, buf = buf.split(b"\r\n", 1)
                    self.received.append(line)
                    tag, _, rest = line.partition(b" ")
                    if rest.upper().startswith(b"CAPABILITY"):
                        capability = b"* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n"
                        conn.sendall(capability + tag + b" OK done\r\n")
                    elif rest.upper().startswith(b"LOGOUT"):
                        conn.sendall(b"* BYE bye\r\n" + tag + b" OK done\r\n")
                        return
                    else:
                        conn.sendall(tag + b" OK done\r\n")

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def no_starttls_server() -> Iterator[_NoStartTlsServer]:
    server = _NoStartTlsServer()
    try:
        yield server
    finally:
        server.close()


def test_starttls_not_offered_refuses_instead_of_continuing_in_clear(
    no_starttls_server: _NoStartTlsServer, imap_account: ImapAccount, tmp_path: Path
) -> None:
    settings = imap_settings(
        imap_account, tmp_path, security="starttls", host="127.0.0.1", port=no_starttls_server.port
    )
    with pytest.raises(MailboxError, match="does not offer STARTTLS"):
        ImapConnector(settings).connect()
    no_starttls_server.thread.join(timeout=5)
    assert not any(b"LOGIN" in line.upper() for line in no_starttls_server.received)


# -- XOAUTH2 ------------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth2_dovecot() -> Iterator[OAuth2Dovecot]:
    server = OAuth2Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


def _xoauth2(account: ImapAccount, tmp_path: Path, **overrides: object) -> ImapConnector:
    return ImapConnector(
        imap_settings(
            account,
            tmp_path,
            security="starttls",
            auth="xoauth2",
            password_file="",
            **overrides,
        )
    )


def test_xoauth2_with_a_token_file(oauth2_dovecot: Dovecot, tmp_path: Path) -> None:
    account = oauth2_dovecot.add_user()
    token = tmp_path / "token"
    token.write_text(mint_token(account.username) + "\n")
    with capture_logs() as logs:
        client = _xoauth2(account, tmp_path, oauth2_token_file=str(token)).connect()
    try:
        assert client.select_folder("INBOX")[b"EXISTS"] == 0
    finally:
        client.logout()
    assert token.read_text().strip() not in repr(logs)


def test_xoauth2_with_a_token_command(oauth2_dovecot: Dovecot, tmp_path: Path) -> None:
    account = oauth2_dovecot.add_user()
    token = tmp_path / "token"
    token.write_text(mint_token(account.username))
    client = _xoauth2(account, tmp_path, oauth2_token_command=f"cat {token}").connect()
    try:
        assert client.select_folder("INBOX")[b"UIDVALIDITY"] > 0
    finally:
        client.logout()


def test_xoauth2_with_a_bad_token_is_an_auth_error(oauth2_dovecot: Dovecot, tmp_path: Path) -> None:
    account = oauth2_dovecot.add_user()
    token = tmp_path / "token"
    token.write_text(mint_token(account.username, key=KEY[::-1]))  # signed with the wrong key
    with pytest.raises(MailboxAuthError, match="refused"):
        _xoauth2(account, tmp_path, oauth2_token_file=str(token)).connect()


def test_xoauth2_on_a_server_without_it_is_an_auth_error(
    imap_account: ImapAccount, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    token.write_text("any-token")
    with pytest.raises(MailboxAuthError, match="does not offer AUTH=XOAUTH2"):
        _xoauth2(imap_account, tmp_path, oauth2_token_file=str(token)).connect()


def test_xoauth2_failing_token_command_is_a_config_error(
    imap_account: ImapAccount, tmp_path: Path
) -> None:
    with pytest.raises(ConfigError, match="token command exited with status 1"):
        _xoauth2(imap_account, tmp_path, oauth2_token_command="false").connect()
