"""OAuth2 for XOAUTH2: signing in, silent refresh, revoked tokens, IMAP and SMTP logins.

The identity provider is :class:`support.token_endpoint.TokenEndpoint`, a local
OAuth2 server on 127.0.0.1 over HTTPS (no real provider is reachable here); the
libraries are the real msal, google-auth and google-auth-oauthlib, pointed at it
(``oauth2.authority``; the token URIs in Google's client and key JSON) and
trusting its certificate through ``REQUESTS_CA_BUNDLE``. The access tokens it
issues are the JWTs the real OAuth2 Dovecot (oauth2 passdb, local validation)
and an XOAUTH2 aiosmtpd accept, so every login here is a real one.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from structlog.testing import capture_logs
from support.cli import run_triage
from support.daemonproc import DaemonProcess, daemon_config, triage_command, write_config
from support.dovecot import ImapAccount
from support.mailtest import message
from support.oauth2 import OAuth2Dovecot
from support.token_endpoint import TENANT, TokenEndpoint
from support.xoauth2_smtp import XOAuth2SmtpServer

from triage.config import load_config, parse_config
from triage.errors import (
    ConfigError,
    MailboxAuthError,
    OAuth2Error,
    SendAuthError,
    SignInRequiredError,
)
from triage.imap.connect import ImapConnector
from triage.oauth2 import token_getter, token_source
from triage.oauth2.cache import read_private, write_private
from triage.oauth2.google import GoogleTokens
from triage.oauth2.microsoft import MicrosoftTokens
from triage.smtp import SmtpSender, make_sender

ROOT = Path(__file__).resolve().parents[1]


# -- servers -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def oauth2_dovecot() -> Iterator[OAuth2Dovecot]:
    server = OAuth2Dovecot()
    server.start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def account(oauth2_dovecot: OAuth2Dovecot) -> ImapAccount:
    return oauth2_dovecot.add_user()


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint().start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", endpoint.cafile)
    try:
        yield endpoint
    finally:
        endpoint.stop()


@pytest.fixture
def smtp_xoauth2() -> Iterator[XOAuth2SmtpServer]:
    server = XOAuth2SmtpServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def microsoft_table(idp: TokenEndpoint, tmp_path: Path, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "microsoft",
        "client_id": idp.client_id,
        "tenant": TENANT,
        "authority": idp.authority,
        "token_cache": str(tmp_path / "oauth2-token.json"),
        "timeout": 10,
        **extra,
    }


def xoauth2_config(
    tmp_path: Path,
    account: ImapAccount,
    smtp_port: int,
    oauth2: dict[str, Any],
    **overrides: Any,
) -> Path:
    """A whole `triage run` config: IMAP and SMTP both XOAUTH2 with ``oauth2``."""
    data = daemon_config(
        account,
        smtp_port,
        f"sqlite:///{tmp_path / 'triage.db'}",
        tmp_path,
        imap={"auth": "xoauth2", "password_file": ""},
        smtp={"auth": "xoauth2", "username": account.username},
        oauth2=oauth2,
        **overrides,
    )
    return write_config(tmp_path / "triage.toml", data)


def triage(config: Path, *args: str, env: dict[str, str]) -> Result:
    """``triage --config CONFIG ARGS`` in-process, with ``env`` over the environment."""
    return run_triage("--config", str(config), *args, env=env)


def device_login(config: Path, idp: TokenEndpoint, user: str) -> str:
    """`triage auth login` as a person would run it: read the code it prints, "enter" it."""
    proc = subprocess.Popen(
        [*triage_command(), "--config", str(config), "auth", "login"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "REQUESTS_CA_BUNDLE": idp.cafile, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    shown: list[str] = []
    try:
        for line in proc.stdout:
            shown.append(line)
            if "enter the code" in line:
                code = line.split("enter the code ")[1].split()[0]
                idp.approve_device(code, user)
                break
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    text = "".join(shown) + out
    assert proc.returncode == 0, text
    return text


# -- configuration and the cache file ------------------------------------------------------


def _parse(data: dict[str, Any], tmp_path: Path) -> Any:
    return parse_config(data, source="t.toml", base_dir=tmp_path)


IMAP = {"host": "imap.example.com", "username": "inbox@example.com", "auth": "xoauth2"}


@pytest.mark.parametrize(
    ("oauth2", "problem"),
    [
        ({"provider": "microsoft"}, "needs client_id"),
        ({"provider": "google"}, "needs client_secrets_file"),
        ({"provider": "google", "flow": "device_code"}, "is not a google flow"),
        ({"provider": "microsoft", "client_id": "x", "flow": "installed"}, "not a microsoft flow"),
        (
            {"provider": "microsoft", "client_id": "x", "flow": "client_credentials"},
            "needs client_secret_env or client_secret_file",
        ),
        (
            {
                "provider": "microsoft",
                "client_id": "x",
                "flow": "client_credentials",
                "client_secret_env": "S",
            },
            "needs tenant set to your tenant id",
        ),
        ({"provider": "google", "flow": "service_account"}, "needs service_account_file"),
        ({"provider": "microsoft", "client_id": "x", "authority": "http://x/t"}, "https://"),
        ({"provider": "microsoft", "client_id": "x", "client_secret": "s"}, "never written"),
    ],
)
def test_bad_oauth2_settings_name_the_key(
    tmp_path: Path, oauth2: dict[str, Any], problem: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        _parse({"imap": IMAP, "oauth2": oauth2}, tmp_path)
    assert "oauth2" in str(raised.value)
    assert problem in str(raised.value)


def test_xoauth2_needs_a_token_source(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"imap\.auth: 'xoauth2' needs an \[oauth2\] section"):
        _parse({"imap": IMAP}, tmp_path)
    smtp = {"host": "smtp.example.com", "from_address": "a@example.com", "auth": "xoauth2"}
    with pytest.raises(ConfigError, match="needs username"):
        _parse({"smtp": smtp}, tmp_path)
    with pytest.raises(ConfigError, match=r"smtp\.auth: 'xoauth2' needs an \[oauth2\]"):
        _parse({"smtp": {**smtp, "username": "a@example.com"}}, tmp_path)


def test_the_examples_oauth2_blocks_are_valid(tmp_path: Path) -> None:
    """Each commented [oauth2] block of config.example.toml validates when uncommented."""
    text = (ROOT / "config.example.toml").read_text(encoding="utf-8")
    blocks: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("# [oauth2]"):
            blocks.append([])
        elif blocks and line.startswith("# ") and "=" in line and not line.startswith("# ["):
            blocks[-1].append(line[2:])
        elif blocks and not line.startswith("#"):
            break
    assert len(blocks) == 2
    example = text.replace('auth = "password"                        # password (LOGIN', "#", 1)
    for block in blocks:
        config = tmp_path / "triage.toml"
        config.write_text(example + "\n[oauth2]\n" + "\n".join(block) + "\n", encoding="utf-8")
        settings = load_config(config)
        assert settings.oauth2 is not None
        assert settings.oauth2.provider in {"microsoft", "google"}


def test_the_token_cache_is_private_from_the_first_byte(tmp_path: Path) -> None:
    path = tmp_path / "state" / "token.json"
    old_umask = os.umask(0o022)
    try:
        write_private(path, '{"refresh_token": "r"}')
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_private(path) == '{"refresh_token": "r"}'
    path.chmod(0o644)
    with pytest.raises(ConfigError, match=r"may be read by others .* chmod 600"):
        read_private(path)
    assert read_private(tmp_path / "missing.json") is None


# -- Microsoft 365: device code, silent refresh, revoked, client credentials ----------------


@pytest.mark.imap
@pytest.mark.smtp
def test_device_code_sign_in_then_imap_and_smtp_log_in_with_xoauth2(
    tmp_path: Path,
    idp: TokenEndpoint,
    account: ImapAccount,
    smtp_xoauth2: XOAuth2SmtpServer,
) -> None:
    config = xoauth2_config(tmp_path, account, smtp_xoauth2.port, microsoft_table(idp, tmp_path))
    shown = device_login(config, idp, account.username)
    assert "use a web browser to open the page" in shown
    assert f"signed in: {account.username}" in shown
    cache = tmp_path / "oauth2-token.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert "RefreshToken" in cache.read_text(encoding="utf-8")
    # the device flow asked for IMAP and SMTP, and offline_access (the refresh token)
    (device_request,) = [f for p, f in idp.requests if p.endswith("/devicecode")]
    scopes = set(device_request["scope"].split())
    assert {
        "https://outlook.office.com/IMAP.AccessAsUser.All",
        "https://outlook.office.com/SMTP.Send",
        "offline_access",
    } <= scopes
    done = triage(config, "auth", "status", env={"REQUESTS_CA_BUNDLE": idp.cafile})
    assert done.exit_code == 0, done.stdout + done.stderr
    assert f"XOAUTH2 login as {account.username} ok" in done.stdout
    assert f"SMTP 127.0.0.1:{smtp_xoauth2.port}: XOAUTH2 login" in done.stdout
    assert smtp_xoauth2.sink.logins == [(account.username, True)]
    for token_text in (cache.read_text(encoding="utf-8"),):  # no token in what was printed
        assert token_text not in done.stdout


def _signed_in_source(tmp_path: Path, idp: TokenEndpoint, user: str) -> MicrosoftTokens:
    """A Microsoft source whose cache holds a sign-in (the device flow, in-process)."""
    settings = _parse({"imap": IMAP, "oauth2": microsoft_table(idp, tmp_path)}, tmp_path)
    source = token_source(settings)
    assert isinstance(source, MicrosoftTokens)
    approver = threading.Thread(target=_approve_when_asked, args=(idp, user), daemon=True)
    approver.start()
    source.sign_in(user, say=lambda _text: None, port=0, browser=False)
    approver.join(10)
    return source


def _approve_when_asked(idp: TokenEndpoint, user: str) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        pending = [d["user_code"] for d in idp.devices.values() if d["user"] is None]
        if pending:
            idp.approve_device(pending[0], user)
            return
        time.sleep(0.05)


def test_the_refresh_token_is_redeemed_silently_and_rotated(
    tmp_path: Path, idp: TokenEndpoint
) -> None:
    idp.lifetime = 1  # every access token is due for refresh at once
    source = _signed_in_source(tmp_path, idp, "inbox@example.test")
    before = idp.grant_types().count("refresh_token")
    cache = tmp_path / "oauth2-token.json"
    first_cache = cache.read_text(encoding="utf-8")
    with capture_logs() as logs:
        first = source.access_token("inbox@example.test")
        second = source.access_token("inbox@example.test")
    assert first.count(".") == second.count(".") == 2  # JWTs the servers accept
    assert idp.grant_types().count("refresh_token") == before + 2
    # the rotated refresh token is what the cache holds now (the old one is spent)
    assert cache.read_text(encoding="utf-8") != first_cache
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert [e["event"] for e in logs] == ["oauth2_token_obtained", "oauth2_token_obtained"]
    # a second process (the CLI) reading the same cache refreshes with the new token
    settings = _parse({"imap": IMAP, "oauth2": microsoft_table(idp, tmp_path)}, tmp_path)
    other = MicrosoftTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    assert other.access_token("inbox@example.test")


def test_a_revoked_refresh_token_is_one_clear_sign_in_error(
    tmp_path: Path, idp: TokenEndpoint
) -> None:
    idp.lifetime = 1
    source = _signed_in_source(tmp_path, idp, "inbox@example.test")
    idp.revoke("inbox@example.test")
    with capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(SignInRequiredError) as raised:
                source.access_token("inbox@example.test")
    message = str(raised.value)
    assert "sign-in of inbox@example.test has expired or was revoked" in message
    assert "invalid_grant" in message
    assert "run `triage auth login` again" in message
    assert "rt-" not in message  # no token in the message
    # one error in the log for the episode, not one per attempt
    assert [e["event"] for e in logs] == ["oauth2_sign_in_required"]


def test_the_imap_connector_turns_token_errors_into_login_errors(
    tmp_path: Path, idp: TokenEndpoint, account: ImapAccount
) -> None:
    settings = _parse(
        {
            "imap": {
                "host": account.host,
                "port": account.port,
                "security": "none",
                "username": account.username,
                "auth": "xoauth2",
                "timeout": 10,
            },
            "oauth2": microsoft_table(idp, tmp_path),
        },
        tmp_path,
    )
    assert settings.imap is not None
    connector = ImapConnector(
        settings.imap,
        resolve=settings.resolve,
        access_token=token_getter(settings, account.username),
    )
    with pytest.raises(MailboxAuthError, match=r"no Microsoft 365 sign-in .* `triage auth login`"):
        connector.connect()
    idp.stop()  # the provider is unreachable: temporary, not a refused login
    fresh = MicrosoftTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    broken = ImapConnector(
        settings.imap,
        resolve=settings.resolve,
        access_token=lambda: fresh.access_token(account.username),
    )
    with pytest.raises(Exception) as raised:
        broken.connect()
    assert not isinstance(raised.value, MailboxAuthError)
    assert "cannot reach the Microsoft sign-in service" in str(raised.value)


def test_client_credentials_get_an_app_token_and_a_bad_secret_is_refused(
    tmp_path: Path, idp: TokenEndpoint, account: ImapAccount, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRIAGE_OAUTH2_SECRET", idp.client_secret)
    table = microsoft_table(
        idp, tmp_path, flow="client_credentials", client_secret_env="TRIAGE_OAUTH2_SECRET"
    )
    settings = _parse({"imap": IMAP, "oauth2": table}, tmp_path)
    source = MicrosoftTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    assert source.access_token("inbox@example.test")
    (form,) = [f for p, f in idp.requests if f.get("grant_type") == "client_credentials"]
    assert form["scope"] == "https://outlook.office365.com/.default"
    assert not (tmp_path / "oauth2-token.json").exists()  # nothing on disk for app-only
    monkeypatch.setenv("TRIAGE_OAUTH2_SECRET", "wrong")
    wrong = MicrosoftTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    with pytest.raises(SignInRequiredError, match="the app's credentials were refused"):
        wrong.access_token("inbox@example.test")


# -- the daemon: a revoked sign-in, then a new one ------------------------------------------


@pytest.mark.imap
@pytest.mark.smtp
@pytest.mark.slow
def test_daemon_with_a_revoked_sign_in_reports_it_retries_and_recovers(
    tmp_path: Path,
    idp: TokenEndpoint,
    oauth2_dovecot: OAuth2Dovecot,
    account: ImapAccount,
    smtp_xoauth2: XOAuth2SmtpServer,
) -> None:
    idp.lifetime = 2  # the daemon must refresh on every (re)connection
    config = xoauth2_config(tmp_path, account, smtp_xoauth2.port, microsoft_table(idp, tmp_path))
    device_login(config, idp, account.username)
    env = {"REQUESTS_CA_BUNDLE": idp.cafile}
    now = format_datetime(datetime.now(UTC))
    oauth2_dovecot.append(account, message(1, subject="Before the revocation", date=now))
    daemon = DaemonProcess(config, tmp_path / "daemon.log", env=env)
    try:
        daemon.wait_event("message_stored", 60)
        smtp_xoauth2.sink.wait_for(1, 60)  # the ack went out over SMTP XOAUTH2
        assert smtp_xoauth2.sink.logins[-1] == (account.username, True)

        idp.revoke(account.username)  # e.g. the user changed the password
        time.sleep(2.5)  # the current access token runs out
        oauth2_dovecot.doveadm("kick", account.username)  # the watcher must log in again
        daemon.wait_event("imap_reconnecting", 60, count=2)  # retrying, at back-off pace
        required = daemon.wait_event("oauth2_sign_in_required", 30)
        assert len(required) == 1  # one clear error, not one per retry
        assert "expired or was revoked" in required[0]["error"]
        done = triage(config, "status", "--json", env=env)
        status = json.loads(done.stdout)
        assert done.exit_code == 1
        problems = " ".join(status["problems"])
        assert "expired or was revoked" in problems
        assert "triage auth login" in problems
        assert daemon.proc.poll() is None  # still running

        device_login(config, idp, account.username)  # someone signs in again
        daemon.wait_event("oauth2_recovered", 90)
        oauth2_dovecot.append(account, message(2, subject="After signing in again", date=now))
        daemon.wait_event("message_stored", 60, count=2)
        daemon.wait_for(
            lambda: json.loads(triage(config, "status", "--json", env=env).stdout)["healthy"],
            60,
            "healthy again",
        )
    finally:
        status_code, _ = daemon.terminate()
    assert status_code == 0
    log = (tmp_path / "daemon.log").read_text(encoding="utf-8")
    assert "rt-" not in log  # no refresh token in the log
    assert "eyJ" not in log  # no JWT (access token) either


# -- Google: the loopback flow with PKCE, refresh, service accounts ---------------------------


def _google_table(tmp_path: Path, idp: TokenEndpoint, **extra: Any) -> dict[str, Any]:
    return {
        "provider": "google",
        "client_secrets_file": str(idp.google_client_secrets(tmp_path / "google-client.json")),
        "token_cache": str(tmp_path / "oauth2-token.json"),
        "timeout": 10,
        **extra,
    }


def _browse(url: str, cafile: str) -> str:
    """The person's browser: open the address, follow the redirect back to triage."""
    context = ssl.create_default_context(cafile=cafile)
    opener = urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))
    with opener.open(url, timeout=30) as response:
        return response.read().decode()


@pytest.mark.imap
def test_google_loopback_sign_in_with_pkce_then_imap_logs_in(
    tmp_path: Path, idp: TokenEndpoint, account: ImapAccount, smtp_xoauth2: XOAuth2SmtpServer
) -> None:
    config = xoauth2_config(tmp_path, account, smtp_xoauth2.port, _google_table(tmp_path, idp))
    proc = subprocess.Popen(
        [
            *triage_command(),
            "--config",
            str(config),
            "auth",
            "login",
            "--no-browser",
            "--port",
            "0",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "REQUESTS_CA_BUNDLE": idp.cafile, "PYTHONUNBUFFERED": "1"},
    )
    assert proc.stdout is not None
    shown: list[str] = []
    try:
        for line in proc.stdout:
            shown.append(line)
            if line.startswith(f"{idp.base}/authorize?"):
                page = _browse(line.strip(), idp.cafile)
                assert "triage is signed in" in page
                break
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(10)
    text = "".join(shown) + out
    assert proc.returncode == 0, text
    (auth_url,) = [line for line in shown if line.startswith(f"{idp.base}/authorize?")]
    assert "code_challenge_method=S256" in auth_url
    assert "access_type=offline" in auth_url
    assert "scope=https%3A%2F%2Fmail.google.com%2F" in auth_url
    (exchange,) = [f for _p, f in idp.requests if f.get("grant_type") == "authorization_code"]
    assert exchange["code_verifier"]  # PKCE: the fake checked it against the challenge
    cache = tmp_path / "oauth2-token.json"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
    assert json.loads(cache.read_text(encoding="utf-8"))["refresh_token"].startswith("rt-")
    done = triage(config, "auth", "status", env={"REQUESTS_CA_BUNDLE": idp.cafile})
    assert done.exit_code == 0, done.stdout + done.stderr
    assert f"XOAUTH2 login as {account.username} ok" in done.stdout


def _google_cache(tmp_path: Path, idp: TokenEndpoint, user: str) -> None:
    """A Google sign-in in the cache, as the loopback flow writes it (refresh token only)."""
    idp.grants.clear()
    body = idp._tokens(user)
    write_private(
        tmp_path / "oauth2-token.json",
        json.dumps(
            {
                "refresh_token": body["refresh_token"],
                "client_id": idp.client_id,
                "client_secret": idp.client_secret,
                "token_uri": f"{idp.base}/token",
                "scopes": ["https://mail.google.com/"],
                "type": "authorized_user",
            }
        ),
    )


def test_google_refresh_is_silent_and_a_revoked_grant_asks_for_a_new_sign_in(
    tmp_path: Path, idp: TokenEndpoint
) -> None:
    settings = _parse({"imap": IMAP, "oauth2": _google_table(tmp_path, idp)}, tmp_path)
    _google_cache(tmp_path, idp, "inbox@example.com")
    source = GoogleTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    token = source.access_token("inbox@example.com")
    assert token.count(".") == 2
    assert source.access_token("inbox@example.com") == token  # valid: no second request
    assert idp.grant_types().count("refresh_token") == 1
    saved = json.loads((tmp_path / "oauth2-token.json").read_text(encoding="utf-8"))
    assert saved["token"] == token
    _google_cache(tmp_path, idp, "inbox@example.com")
    idp.revoke("inbox@example.com")
    fresh = GoogleTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    with pytest.raises(SignInRequiredError, match=r"Google sign-in .* expired or was revoked"):
        fresh.access_token("inbox@example.com")


def test_google_token_endpoint_unreachable_is_temporary(tmp_path: Path, idp: TokenEndpoint) -> None:
    settings = _parse({"imap": IMAP, "oauth2": _google_table(tmp_path, idp)}, tmp_path)
    _google_cache(tmp_path, idp, "inbox@example.com")
    idp.stop()
    source = GoogleTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    with pytest.raises(OAuth2Error) as raised:
        source.access_token("inbox@example.com")
    assert not isinstance(raised.value, SignInRequiredError)
    assert "cannot reach Google's token endpoint" in str(raised.value)


@pytest.mark.imap
def test_google_service_account_token_logs_in_to_imap(
    tmp_path: Path, idp: TokenEndpoint, account: ImapAccount
) -> None:
    key = idp.add_service_account(tmp_path / "service-account.json")
    settings = _parse(
        {
            "imap": {
                "host": account.host,
                "port": account.port,
                "security": "none",
                "username": account.username,
                "auth": "xoauth2",
                "timeout": 10,
            },
            "oauth2": {"provider": "google", "flow": "service_account",
                       "service_account_file": str(key)},
        },
        tmp_path,
    )  # fmt: skip
    assert settings.imap is not None
    connector = ImapConnector(
        settings.imap,
        resolve=settings.resolve,
        access_token=token_getter(settings, account.username),
    )
    client = connector.connect()
    client.logout()
    (form,) = [f for _p, f in idp.requests if "jwt-bearer" in f.get("grant_type", "")]
    assert form["assertion"].count(".") == 2  # signed with the key; the fake verified it


# -- SMTP XOAUTH2 in the sender ----------------------------------------------------------------


def test_smtp_sender_authenticates_with_xoauth2_and_reports_a_refused_token(
    tmp_path: Path, idp: TokenEndpoint, smtp_xoauth2: XOAuth2SmtpServer
) -> None:
    import asyncio  # noqa: PLC0415

    user = "inbox@example.test"
    idp.lifetime = 1  # each session refreshes its token
    source = _signed_in_source(tmp_path, idp, user)
    sender = SmtpSender(
        "127.0.0.1",
        smtp_xoauth2.port,
        security="none",
        username=user,
        auth="xoauth2",
        token=lambda: source.access_token(user),
        timeout=10,
    )
    asyncio.run(sender.verify())
    assert smtp_xoauth2.sink.logins == [(user, True)]
    # the server refuses a bad token: a refused login (sending stops until a reload)
    refused = SmtpSender(
        "127.0.0.1", smtp_xoauth2.port, security="none", username=user, auth="xoauth2",
        token=lambda: "not-a-valid-token", timeout=10,
    )  # fmt: skip
    with pytest.raises(SendAuthError, match="AUTH refused"):
        asyncio.run(refused.verify())
    # a revoked sign-in: the session fails before AUTH, saying what to do
    idp.revoke(user)
    settings = _parse(
        {
            "smtp": {"host": "127.0.0.1", "port": smtp_xoauth2.port, "security": "none",
                     "from_address": user, "username": user, "auth": "xoauth2"},
            "oauth2": microsoft_table(idp, tmp_path),
        },
        tmp_path,
    )  # fmt: skip
    made = make_sender(settings)
    assert isinstance(made, SmtpSender)
    with pytest.raises(SendAuthError, match="expired or was revoked"):
        asyncio.run(made.verify())
