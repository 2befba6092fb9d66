"""Later tester-ops findings: F6 (logout undone by a running daemon), F7 (counters
not initialised), F8 (corrupt cache in a running daemon), F12 (restart loop on a
config error), F13 (an extra mailbox's secret: not checked, wrong key named).

The OAuth2 cases use the real msal against the local token endpoint
(:class:`support.token_endpoint.TokenEndpoint`) and a real cache file; the
config cases the real ``triage`` command.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from prometheus_client import generate_latest
from support.daemonproc import triage_command
from support.token_endpoint import TokenEndpoint
from test_oauth2 import IMAP, _approve_when_asked, microsoft_table

from triage.config import parse_config
from triage.errors import ConfigError, SignInRequiredError
from triage.metrics import TriageMetrics
from triage.oauth2.microsoft import MicrosoftTokens

USER = "inbox@example.com"


@pytest.fixture
def idp(monkeypatch: pytest.MonkeyPatch) -> Iterator[TokenEndpoint]:
    endpoint = TokenEndpoint().start()
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", endpoint.cafile)
    try:
        yield endpoint
    finally:
        endpoint.stop()


def _daemon_source(tmp_path: Path, idp: TokenEndpoint) -> MicrosoftTokens:
    """Signed in by one source (`auth login`), then a second one, as the daemon's, in use."""
    settings = parse_config(
        {"imap": IMAP, "oauth2": microsoft_table(idp, tmp_path)}, source="t", base_dir=tmp_path
    )
    login = MicrosoftTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    approver = threading.Thread(target=_approve_when_asked, args=(idp, USER), daemon=True)
    approver.start()
    login.sign_in(USER, say=lambda _t: None, port=0, browser=False)
    approver.join(10)
    daemon = MicrosoftTokens(settings.oauth2, settings.resolve)  # type: ignore[arg-type]
    assert daemon.access_token(USER)
    return daemon


def test_a_deleted_token_cache_signs_the_running_daemon_out(
    tmp_path: Path, idp: TokenEndpoint
) -> None:
    daemon = _daemon_source(tmp_path, idp)
    cache = tmp_path / "oauth2-token.json"
    cache.unlink()  # what `triage auth logout` does
    idp.grants.clear()
    with pytest.raises(SignInRequiredError, match="run `triage auth login`"):
        daemon.access_token(USER)
    assert not cache.exists()  # not written back from memory
    assert "refresh_token" not in idp.grant_types()  # the refresh token was not redeemed


def test_a_cache_corrupted_under_a_running_daemon_names_the_file_and_the_fix(
    tmp_path: Path, idp: TokenEndpoint
) -> None:
    daemon = _daemon_source(tmp_path, idp)
    cache = tmp_path / "oauth2-token.json"
    cache.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError) as raised:
        daemon.access_token(USER)
    assert str(raised.value) == (
        f"oauth2.token_cache: {cache} is not a valid sign-in (corrupt JSON at line 1 column 2);"
        " run `triage auth login` (it replaces the file)"
    )


def test_counters_an_alert_watches_exist_at_zero_from_the_start() -> None:
    metrics = TriageMetrics(process=False, folders=["INBOX", "sales:INBOX"])
    text = generate_latest(metrics.registry).decode()
    for series in (
        'triage_oauth2_token_requests_total{result="sign_in_required"} 0.0',
        'triage_oauth2_token_requests_total{result="failed"} 0.0',
        'triage_imap_reconnects_total{folder="INBOX"} 0.0',
        'triage_imap_reconnects_total{folder="sales:INBOX"} 0.0',
        'triage_outbox_deliveries_total{kind="ack",result="failed"} 0.0',
        'triage_sla_escalations_total{target="first_response",type="breach"} 0.0',
    ):
        assert series in text, series
    metrics.observe("oauth2_sign_in_required", {})
    text = generate_latest(metrics.registry).decode()
    assert 'triage_oauth2_token_requests_total{result="sign_in_required"} 1.0' in text


def test_a_config_error_stops_the_unit_instead_of_restarting_it_forever() -> None:
    unit = (Path(__file__).resolve().parents[1] / "deploy" / "triage.service").read_text(
        encoding="utf-8"
    )
    assert "\nRestartPreventExitStatus=2\n" in unit
    assert "\nRestart=on-failure\n" in unit


def test_an_extra_mailbox_secret_is_checked_by_init_and_named_by_its_key(
    tmp_path: Path,
) -> None:
    config = tmp_path / "c.toml"
    config.write_text(
        f"""
[database]
url = "sqlite:///{tmp_path / "t.db"}"

[imap]
host = "127.0.0.1"
port = 1
security = "none"
username = "{USER}"
password_env = "TRIAGE_IMAP_PASSWORD"

[[imap.accounts]]
name = "sales"
username = "s@x.example"
password_env = "TRIAGE_SALES_PW"
folders = ["INBOX"]

[smtp]
mode = "folder"
folder = "{tmp_path / "out"}"
from_address = "{USER}"
""",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRIAGE_")}
    env["TRIAGE_IMAP_PASSWORD"] = "inboxpass"

    def triage(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*triage_command(), "--config", str(config), *args],
            capture_output=True, text=True, timeout=120, check=False, env=env,
        )  # fmt: skip

    wanted = (
        "imap.accounts.0.password_env: environment variable TRIAGE_SALES_PW is not set or empty"
    )
    init = triage("init")
    assert init.returncode == 0, init.stderr
    assert f"warning: {wanted} here" in init.stderr
    for args in (("poll", "--once"), ("run",)):
        done = triage(*args)
        assert done.returncode == 2
        assert done.stderr.strip() == f"error: {wanted}"


@pytest.mark.parametrize(
    "header",
    [
        ("Forwarded", "for=203.0.113.9"),
        ("X-Real-IP", "203.0.113.9"),
        ("X-Forwarded-Host", "desk.example.com"),
        ("Via", "1.1 proxy"),
    ],
)
def test_health_and_metrics_on_the_web_port_refuse_requests_through_a_proxy(
    tmp_path: Path, header: tuple[str, str]
) -> None:
    # a proxy on this machine is itself a loopback client; whatever header it adds
    # says the request is someone else's (tester-ops F10)
    from starlette.testclient import TestClient  # noqa: PLC0415 - the web extra's test client
    from support.web import make_site  # noqa: PLC0415

    site = make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=datetime.now(UTC))
    try:
        local = TestClient(site.app(origin="http://testserver"), client=("127.0.0.1", 40000))
        assert local.get("/health").status_code in {200, 503}
        assert local.get("/metrics").status_code == 200
        assert local.get("/health", headers=dict([header])).status_code == 404
        assert local.get("/metrics", headers=dict([header])).status_code == 404
    finally:
        site.db.dispose()


def test_the_status_line_says_what_needs_attention_and_clears_it(tmp_path: Path) -> None:
    # tester-ops F11: STATUS= said "running: watching INBOX" while the login was refused
    from test_systemd import NotifySocket  # noqa: PLC0415 - its datagram listener

    from triage.liveness import Liveness  # noqa: PLC0415
    from triage.systemd import SystemdNotifier  # noqa: PLC0415
    from triage.watchdog import Watchdog  # noqa: PLC0415

    sock = NotifySocket(tmp_path / "notify")
    problem = ["INBOX: login as inbox@example.test refused: [AUTHENTICATIONFAILED]"]
    try:
        watchdog = Watchdog(
            Liveness(),
            SystemdNotifier(sock.address),
            interval=5,
            running_status="running: watching INBOX",
            attention=lambda: f"attention: {problem[0]}; retrying" if problem[0] else "",
        )
        watchdog.check()
        watchdog.check()  # unchanged: not sent again
        problem[0] = ""
        watchdog.check()
        sock.wait_for("WATCHDOG", 5, count=3)
        statuses = [m["STATUS"] for m in sock.with_key("STATUS")]
        assert statuses == [
            (
                "attention: INBOX: login as inbox@example.test refused: [AUTHENTICATIONFAILED];"
                " retrying"
            ),
            "running: watching INBOX",
        ]
    finally:
        sock.close()


def test_a_taken_monitoring_port_is_a_standing_problem_until_a_start_binds_it(
    tmp_path: Path,
) -> None:
    # tester-ops F9: the daemon ran on without /metrics and /health, and nothing said so
    import socket  # noqa: PLC0415

    from triage.daemon import Daemon  # noqa: PLC0415
    from triage.health import read_health  # noqa: PLC0415
    from triage.store import Database  # noqa: PLC0415

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    settings = parse_config(
        {"monitoring": {"enabled": True, "host": "127.0.0.1", "port": port}},
        source="t.toml",
        base_dir=tmp_path,
    )
    db = Database.open(f"sqlite:///{tmp_path / 't.db'}")
    try:
        daemon = Daemon(settings, db)
        assert daemon._start_monitoring() is None
        (problem,) = read_health(db, settings).problems
        assert problem.startswith(
            f"monitoring: monitoring.host/port: cannot listen on 127.0.0.1:{port}"
        )
        assert "/metrics and /health are not served by this daemon" in problem
        taken.close()
        server = daemon._start_monitoring()
        assert server is not None
        server.stop()
        assert read_health(db, settings).problems == []
    finally:
        taken.close()
        db.dispose()


@pytest.mark.parametrize("section", ["imap", "smtp", "monitoring", "web"])
def test_a_port_written_as_a_string_is_refused_naming_the_key(tmp_path: Path, section: str) -> None:
    # tester-ops: `port = "11143"` was silently accepted
    base: dict[str, dict[str, object]] = {
        "imap": {"host": "h", "username": "u", "password_env": "A"},
        "smtp": {"host": "h", "from_address": "a@example.com"},
        "monitoring": {},
        "web": {},
    }
    with pytest.raises(ConfigError, match=rf"{section}\.port: Input should be a valid integer"):
        parse_config(
            {section: {**base[section], "port": "11143"}}, source="t.toml", base_dir=tmp_path
        )
    assert parse_config(
        {section: {**base[section], "port": 11143}}, source="t.toml", base_dir=tmp_path
    )
