"""An unusable OAuth2 token cache, and the sign-in errors an admin reads (tester-ops F2, F3).

A token cache that is corrupt, empty, of the wrong shape, a directory, not a
regular file or unreadable gives one line naming ``oauth2.token_cache``, the file
and what to do, the same from ``triage run``, ``init``, ``poll --once`` and
``auth status``, never a traceback, before any network, and never the refresh
token. ``triage auth login`` replaces such a file. Errors name the real config
keys and the reason, not an exception class; library log lines come out in the
structured log.

The commands run in-process (:func:`support.cli.run_triage`) on real files; the
unreadable cache is read by the installed command in a process without
capabilities; the network case uses a name that cannot resolve (``.invalid``,
RFC 2606) and the real msal/requests.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from subprocess import CompletedProcess
from typing import Any

import pytest
from click.testing import Result
from support.cli import run_triage
from support.daemonproc import to_toml, triage_command
from support.token_endpoint import TokenEndpoint
from test_oauth2 import device_login, microsoft_table

from triage.config import parse_config
from triage.errors import ConfigError, OAuth2UnreachableError
from triage.oauth2.google import GoogleTokens
from triage.oauth2.microsoft import MicrosoftTokens

SECRET = "1//0gSECRETREFRESH"


def write_config(tmp_path: Path, oauth2: dict[str, Any], **imap: Any) -> Path:
    data = {
        "database": {"url": f"sqlite:///{tmp_path / 'triage.db'}"},
        "imap": {
            "host": "127.0.0.1",
            "port": 1,
            "security": "none",
            "username": "inbox@example.com",
            "auth": "xoauth2",
            "timeout": "2s",
            **imap,
        },
        "smtp": {
            "mode": "send",
            "host": "127.0.0.1",
            "port": 1,
            "security": "none",
            "username": "inbox@example.com",
            "auth": "xoauth2",
            "from_address": "inbox@example.com",
        },
        "team": {"addresses": ["inbox@example.com"]},
        "oauth2": {"token_cache": str(tmp_path / "oauth2-token.json"), **oauth2},
    }
    path = tmp_path / "triage.toml"
    path.write_text(to_toml(data), encoding="utf-8")
    return path


MICROSOFT = {"provider": "microsoft", "client_id": "abc", "tenant": "example.onmicrosoft.com"}


def triage(config: Path, *args: str) -> Result:
    """``triage --config CONFIG ARGS`` in-process, without the caller's ``TRIAGE_*`` variables."""
    env: dict[str, str | None] = {k: None for k in os.environ if k.startswith("TRIAGE_")}
    return run_triage("--config", str(config), *args, env=env)


def triage_process(config: Path, *args: str, prefix: tuple[str, ...]) -> CompletedProcess[str]:
    """The installed command in a real process started through ``prefix`` (e.g. setpriv)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    return subprocess.run(
        [*prefix, *triage_command(), "--config", str(config), *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env=env,
    )


def _corrupt(path: Path) -> None:
    path.write_text('{"refresh_token": "' + SECRET + '", garbage', encoding="utf-8")


def _empty(path: Path) -> None:
    path.write_text("", encoding="utf-8")


def _array(path: Path) -> None:
    path.write_text(json.dumps([SECRET]), encoding="utf-8")


def _wrong_sections(path: Path) -> None:
    path.write_text(json.dumps({"RefreshToken": [SECRET]}), encoding="utf-8")


def _not_utf8(path: Path) -> None:
    path.write_bytes(b'{"refresh_token": "\xff\xfe"}')


BROKEN = {
    "corrupt JSON": (_corrupt, "is not a valid sign-in (corrupt JSON at line 1 column"),
    "empty file": (_empty, "is not a valid sign-in (the file is empty)"),
    "a JSON array": (_array, "is not a valid sign-in (JSON an array instead of an object)"),
    "msal sections of the wrong shape": (
        _wrong_sections,
        "is not a valid sign-in (not an msal token cache)",
    ),
    "not UTF-8": (_not_utf8, "is not a valid sign-in (not UTF-8 text)"),
}


@pytest.mark.parametrize("kind", sorted(BROKEN))
def test_an_unusable_token_cache_is_one_line_from_every_command(tmp_path: Path, kind: str) -> None:
    config = write_config(tmp_path, MICROSOFT)
    cache = tmp_path / "oauth2-token.json"
    BROKEN[kind][0](cache)
    cache.chmod(0o600)
    expected = f"oauth2.token_cache: {cache} {BROKEN[kind][1]}"
    for args in (("run",), ("poll", "--once"), ("auth", "status")):
        done = triage(config, *args)
        assert done.exit_code == 2, (args, done.stderr)
        assert done.stderr.startswith(f"error: {expected}"), (args, done.stderr)
        assert "run `triage auth login` (it replaces the file)" in done.stderr
        assert "Traceback" not in done.stderr
        assert SECRET not in done.stderr + done.stdout
        # the cache is judged before any network: no "cannot reach" for a bad file
        assert "cannot reach" not in done.stderr
    init = triage(config, "init")
    assert init.exit_code == 0, init.stderr
    assert f"warning: {expected}" in init.stderr
    assert "refuse to start until it is fixed" in init.stderr
    assert "environment" not in init.stderr
    assert "Traceback" not in init.stderr


def test_a_directory_or_a_fifo_as_token_cache_is_named_as_such(tmp_path: Path) -> None:
    config = write_config(tmp_path, MICROSOFT)
    cache = tmp_path / "oauth2-token.json"
    cache.mkdir(mode=0o700)
    done = triage(config, "run")
    assert done.exit_code == 2
    assert done.stderr.strip() == (
        f"error: oauth2.token_cache: {cache} is a directory; the key names the cache file"
        f" itself, e.g. {cache / 'oauth2-token.json'}"
    )
    cache.rmdir()
    os.mkfifo(cache, 0o600)  # reading it would block forever
    done = triage(config, "auth", "status")
    assert done.exit_code == 2
    assert done.stderr.strip() == (
        f"error: oauth2.token_cache: {cache} is not a regular file; name a file (mode 0600)"
    )


def test_an_unreadable_token_cache_says_who_must_be_able_to_read_it(tmp_path: Path) -> None:
    config = write_config(tmp_path, MICROSOFT)
    cache = tmp_path / "oauth2-token.json"
    cache.write_text("{}", encoding="utf-8")
    cache.chmod(0o000)  # the owner may not read it either
    # without capabilities even root obeys the mode (as the `triage` user would)
    prefix = ("setpriv", "--bounding-set=-all", "--inh-caps=-all")
    if subprocess.run([*prefix, "true"], check=False).returncode != 0:
        pytest.skip("setpriv cannot drop capabilities here")
    done = triage_process(config, "run", prefix=prefix)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"error: oauth2.token_cache: cannot read {cache}: Permission denied (it must be"
        " readable by the user triage runs as, e.g. chown triage)"
    )


def test_google_caches_of_the_wrong_shape_are_named_too(tmp_path: Path) -> None:
    client = tmp_path / "client.json"
    client.write_text(
        json.dumps({"installed": {"client_id": "c", "token_uri": "https://oauth2.invalid/t"}}),
        encoding="utf-8",
    )
    config = write_config(tmp_path, {"provider": "google", "client_secrets_file": str(client)})
    cache = tmp_path / "oauth2-token.json"
    cache.write_text(json.dumps({"token": SECRET}), encoding="utf-8")
    cache.chmod(0o600)
    for args in (("run",), ("auth", "status")):
        done = triage(config, *args)
        assert done.exit_code == 2
        assert done.stderr.strip() == (
            f"error: oauth2.token_cache: {cache} is not a valid sign-in (no refresh token in"
            " it); run `triage auth login` (it replaces the file)"
        )
    # a refresh token but not the rest of an authorized-user JSON: google-auth's reason
    cache.write_text(json.dumps({"refresh_token": SECRET}), encoding="utf-8")
    settings = parse_config(
        {"oauth2": {"provider": "google", "client_secrets_file": str(client),
                    "token_cache": str(cache)}},
        source="t.toml",
        base_dir=tmp_path,
    )  # fmt: skip
    source = GoogleTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    with pytest.raises(ConfigError) as raised:
        source.access_token("inbox@example.com")
    assert "not a Google sign-in: Authorized user info was not in the expected format" in str(
        raised.value
    )
    assert "client_id" in str(raised.value)
    assert SECRET not in str(raised.value)


# -- F3: the real key names, reasons instead of class names, library logs structured ------


def test_a_missing_client_secret_names_client_secret_env(tmp_path: Path) -> None:
    config = write_config(
        tmp_path,
        {**MICROSOFT, "tenant": "00000000-0000-0000-0000-000000000001",
         "flow": "client_credentials", "client_secret_env": "TRIAGE_OAUTH2_SECRET"},
    )  # fmt: skip
    for args in (("run",), ("auth", "login")):
        done = triage(config, *args)
        assert done.exit_code == 2, done.stderr
        assert done.stderr.strip() == (
            "error: oauth2.client_secret_env: environment variable TRIAGE_OAUTH2_SECRET"
            " is not set or empty"
        )
    secret_file = tmp_path / "secret"
    secret_file.write_text("", encoding="utf-8")
    config = write_config(
        tmp_path,
        {**MICROSOFT, "tenant": "00000000-0000-0000-0000-000000000001",
         "flow": "client_credentials", "client_secret_file": str(secret_file)},
    )  # fmt: skip
    done = triage(config, "run")
    assert done.stderr.strip() == f"error: oauth2.client_secret_file: {secret_file} is empty"


def test_an_imap_token_file_error_names_oauth2_token_file(tmp_path: Path) -> None:
    config = write_config(tmp_path, MICROSOFT, oauth2_token_file=str(tmp_path / "none"))
    done = triage(config, "run")
    assert done.exit_code == 2
    assert done.stderr.strip() == (
        f"error: imap.oauth2_token_file: cannot read {tmp_path / 'none'}: No such file or directory"
    )


def test_a_bad_service_account_key_says_what_is_wrong_with_it(tmp_path: Path) -> None:
    key = tmp_path / "sa.json"
    key.write_text(
        json.dumps(
            {"type": "service_account", "client_email": "sa@p.iam.gserviceaccount.com",
             "private_key": "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
             "private_key_id": "1", "token_uri": "https://oauth2.invalid/token"}
        ),
        encoding="utf-8",
    )  # fmt: skip
    config = write_config(
        tmp_path,
        {"provider": "google", "flow": "service_account", "service_account_file": str(key)},
    )
    done = triage(config, "auth", "login")
    assert done.exit_code == 2
    line = done.stderr.strip()
    assert line.startswith(f"error: oauth2.service_account_file: cannot use {key} (")
    reason = line.split(" (", 1)[1].split(")", 1)[0]
    assert reason not in {"ValueError", "KeyError", "TypeError"}
    assert len(reason) > 12
    assert "not a key" not in line  # never the key's text
    assert "download a new key" in line


def test_an_unreachable_sign_in_service_says_why_and_logs_through_structlog(
    tmp_path: Path,
) -> None:
    config = write_config(tmp_path, {**MICROSOFT, "authority": "https://login.invalid/tenant"})
    done = triage(config, "--log-format", "json", "auth", "login")
    assert done.exit_code != 0
    last = done.stderr.strip().splitlines()[-1]
    assert last == (
        "error: cannot reach the Microsoft sign-in service (https://login.invalid/tenant):"
        " name resolution failed for login.invalid"
    )
    for line in done.stderr.strip().splitlines()[:-1]:
        event = json.loads(line)  # library lines too: one JSON object each, no raw logging
        assert {"event", "level", "timestamp"} <= set(event)
    source_settings = parse_config(
        {"oauth2": {**MICROSOFT, "authority": "https://login.invalid/tenant",
                    "token_cache": str(tmp_path / "none.json")}},
        source="t.toml",
        base_dir=tmp_path,
    )  # fmt: skip
    source = MicrosoftTokens(source_settings.oauth2, source_settings.resolve)  # type: ignore[arg-type]
    with pytest.raises(OAuth2UnreachableError, match=r"name resolution failed for login\.invalid"):
        source.sign_in("inbox@example.com", say=lambda _t: None, port=0, browser=False)


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenEndpoint]:
    """The local OAuth2 endpoint (as in test_oauth2), trusted through REQUESTS_CA_BUNDLE."""
    endpoint = TokenEndpoint().start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", endpoint.cafile)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def test_auth_login_replaces_a_corrupt_cache_and_the_sign_in_then_works(
    tmp_path: Path, idp: TokenEndpoint
) -> None:
    config = write_config(tmp_path, microsoft_table(idp, tmp_path))
    cache = tmp_path / "oauth2-token.json"
    _corrupt(cache)
    cache.chmod(0o600)
    shown = device_login(config, idp, "inbox@example.com")
    assert (
        f"The token cache {cache} is not a valid sign-in (corrupt JSON at line 1 column"
    ) in shown
    assert "replacing it." in shown
    assert SECRET not in shown
    status = triage(config, "auth", "status", "--no-servers")
    assert status.exit_code == 0, status.stderr
    assert "access token: ok" in status.stdout
    assert stat.S_IMODE(cache.stat().st_mode) == 0o600
