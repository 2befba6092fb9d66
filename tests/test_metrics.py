"""Prometheus metrics and the health endpoint: what they count, and that they agree with
``triage status``.

The main test runs ``triage run`` as a real process against the real Dovecot and
aiosmtpd with a trained model active, sends it client mail, then reads
``/metrics`` and ``/health`` from its loopback listener and ``triage status --json``
from the CLI, and compares them; then it breaks the IMAP login (the password file
goes away) and checks that all three turn unhealthy for the same reason.
"""

from __future__ import annotations

import io
import json
import re
import runpy
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from importlib.resources import files
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from prometheus_client.parser import text_string_to_metric_families
from support.cli import run_triage
from support.daemonproc import DaemonProcess, daemon_config, write_config
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import imap_table, message, settings_for
from support.smtp import SmtpServer

from classifiers.model import TrainedModel, train
from triage.clock import FixedClock
from triage.config import parse_config
from triage.daemon import Daemon
from triage.health import read_health
from triage.liveness import Liveness
from triage.logs import configure_logging
from triage.metrics import TriageMetrics
from triage.modelstore import save_model
from triage.monitoring import MonitoringServer
from triage.store import Database
from triage.store.models import Folder, OutboxMail
from triage.training.sources import load_csv

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample at ``url`` as {(name, sorted labels): value}."""
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
        text = response.read().decode()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def get_json(url: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, json.loads(exc.read())


@pytest.fixture(scope="module")
def demo_model() -> TrainedModel:
    data = load_csv(Path(str(files("triage.demo") / "data" / "training.csv")))
    return train(list(data.examples), list(data.labels), trained_at=datetime.now(UTC))


def _client_mail(n: int, subject: str, body: str) -> bytes:
    return message(
        n,
        subject=subject,
        body=body,
        sender=f"client{n}@example.org",
        date=format_datetime(datetime.now(UTC)),
    )


@pytest.mark.imap
@pytest.mark.smtp
@pytest.mark.slow
def test_metrics_health_and_status_agree_on_a_running_daemon(
    tmp_path: Path,
    dovecot: Dovecot,
    imap_account: ImapAccount,
    smtp_server: SmtpServer,
    demo_model: TrainedModel,
) -> None:
    db_url = f"sqlite:///{tmp_path / 'triage.db'}"
    db = Database.open(db_url)
    with db.session() as s:
        save_model(s, demo_model, activate=True)
    config = write_config(
        tmp_path / "triage.toml", daemon_config(imap_account, smtp_server.port, db_url, tmp_path)
    )
    mails = [
        _client_mail(1, "Invoice 2024-113 is wrong", "The amount on the invoice is too high."),
        _client_mail(2, "Can we move Tuesday's meeting?", "Could we meet on Thursday instead?"),
        _client_mail(3, "Payroll documents for March", "Attached are the payroll records."),
    ]
    for raw in mails[:2]:
        dovecot.append(imap_account, raw)
    daemon = DaemonProcess(config, tmp_path / "daemon.log")
    try:
        listening = daemon.wait_event("monitoring_listening", 60)[0]
        assert listening["host"] == "127.0.0.1"
        assert listening["loopback"] is True
        base = f"http://127.0.0.1:{listening['port']}"
        daemon.wait_event("daemon_started", 60)
        dovecot.append(imap_account, mails[2])  # this one arrives while the daemon idles
        smtp_server.sink.wait_for(3, 60)
        daemon.wait_event("mail_sent", 30, count=3)

        metrics = scrape(f"{base}/metrics")
        status = json.loads(_triage(config, "status", "--json").stdout)
        health_code, health = get_json(f"{base}/health")

        # intake, routing, latency, connection: counted from what the daemon did
        assert value(metrics, "triage_messages_stored_total", folder="INBOX", outcome="stored") == 3
        decisions = [
            v for (name, _), v in metrics.items() if name == "triage_routing_decisions_total"
        ]
        assert sum(decisions) == 3
        scored = value(metrics, "triage_model_confidence_count")
        assert scored == 3  # the model scored each (whether or not it decided)
        assert value(metrics, "triage_intake_latency_seconds_count", folder="INBOX") == 3
        # each arrived within seconds of its APPEND (the first two before the daemon started)
        assert (
            value(metrics, "triage_intake_latency_seconds_bucket", folder="INBOX", le="300.0") == 3
        )
        assert value(metrics, "triage_imap_connected", folder="INBOX") == 1
        assert (value(metrics, "triage_imap_connections_total", folder="INBOX") or 0) >= 1
        assert value(metrics, "triage_outbox_deliveries_total", kind="ack", result="sent") == 3
        assert (value(metrics, "triage_loop_seconds_since_progress", loop="dispatch") or 99) < 60
        assert value(metrics, "triage_loop_stalled", loop="imap-INBOX") == 0

        # state: the same numbers as `triage status`
        assert status["healthy"] is True
        assert health_code == 200
        assert health["healthy"] is True
        assert health["problems"] == status["problems"] == []
        assert value(metrics, "triage_healthy") == 1
        assert value(metrics, "triage_status_up") == 1
        assert value(metrics, "triage_tickets_breached") == status["breached"]
        assert value(metrics, "triage_tickets_awaiting_answer") == status["awaiting_answer"] == 3
        for queue, count in status["open_by_queue"].items():
            assert value(metrics, "triage_tickets_open", queue=queue) == count
        outbox = status["outbox"]
        for name in ("pending", "retrying", "failed", "sent"):
            assert value(metrics, "triage_outbox_mails", status=name) == outbox[name]
        assert value(metrics, "triage_outbox_oldest_pending_age_seconds") == 0
        (folder,) = status["folders"]
        polled = datetime.fromisoformat(folder["last_poll_at"]).timestamp()
        scraped = value(metrics, "triage_folder_last_poll_timestamp_seconds", folder="INBOX")
        assert scraped is not None
        assert abs(scraped - polled) < 30  # polled again meanwhile, at most
        assert value(metrics, "triage_folder_last_uid", folder="INBOX") == folder["last_uid"] == 3
        version = status["models"]["queue"]
        assert version == demo_model.version
        assert value(metrics, "triage_model_info", target="queue", version=version) == 1

        # break the login: the password file goes away; the watcher reconnects and fails
        password_file = Path(
            daemon_config(imap_account, 1, db_url, tmp_path)["imap"]["password_file"]
        )
        password_file.unlink()
        dovecot.doveadm("kick", imap_account.username)  # drop the live connection
        daemon.wait_event("imap_reconnecting", 60)
        daemon.wait_for(
            lambda: value(scrape(f"{base}/metrics"), "triage_healthy") == 0, 60, "unhealthy"
        )
        # the first problem is the server's BYE; the failed login after it names the key
        daemon.wait_for(
            lambda: any(
                "imap.password_file" in p for p in get_json(f"{base}/health")[1]["problems"]
            ),
            60,
            "the failed login reported",
        )
        metrics = scrape(f"{base}/metrics")
        done = _triage(config, "status", "--json")
        status = json.loads(done.stdout)
        health_code, health = get_json(f"{base}/health")
        assert done.exit_code == 1
        assert health_code == 503
        assert status["problems"]
        assert health["problems"] == status["problems"]
        assert any("imap.password_file" in p for p in status["problems"])
        assert value(metrics, "triage_health_problems") == len(status["problems"])
        assert value(metrics, "triage_folder_failing", folder="INBOX") == 1
        assert value(metrics, "triage_imap_connected", folder="INBOX") == 0
        assert (value(metrics, "triage_imap_reconnects_total", folder="INBOX") or 0) >= 1

        # anything else on the listener is 404
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{base}/", timeout=10)  # noqa: S310 - loopback
        missing.value.close()
        assert missing.value.code == 404
    finally:
        daemon.terminate()
        db.dispose()


def _triage(config: Path, *args: str) -> Result:
    return run_triage("--config", str(config), *args)


# -- in-process: the event table, whatever the log level ---------------------------------


@pytest.fixture
def metrics() -> Iterator[TriageMetrics]:
    m = TriageMetrics(process=False)
    m.attach()
    try:
        yield m
    finally:
        m.detach()


def _sample(m: TriageMetrics, name: str, **labels: str) -> float | None:
    return m.registry.get_sample_value(name, labels)


@pytest.mark.imap
def test_intake_is_counted_even_when_the_log_level_hides_it(
    tmp_path: Path, dovecot: Dovecot, imap_account: ImapAccount, metrics: TriageMetrics
) -> None:
    stream = io.StringIO()
    configure_logging("json", "warning", stream=stream)
    try:
        settings = settings_for(imap_account, f"sqlite:///{tmp_path / 't.db'}", tmp_path)
        db = Database.open(settings.database_url)
        for n in range(3):
            dovecot.append(imap_account, message(n))
        dovecot.append(imap_account, b"\x00\xff not a mail at all")
        Daemon(settings, db).poll_once()
        db.dispose()
    finally:
        configure_logging("console", "info")
    assert _sample(metrics, "triage_messages_stored_total", folder="INBOX", outcome="stored") == 3
    assert (
        _sample(metrics, "triage_routing_decisions_total", queue="unsorted", decided_by="fallback")
        == 4
    )
    assert "message_stored" not in stream.getvalue()  # the log itself obeyed the level


@pytest.mark.imap
def test_sla_warnings_and_breaches_are_counted(
    tmp_path: Path, dovecot: Dovecot, imap_account: ImapAccount, metrics: TriageMetrics
) -> None:
    configure_logging("json", "info", stream=io.StringIO())
    try:
        every_day = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
        data = {
            "database": {"url": f"sqlite:///{tmp_path / 't.db'}"},
            "imap": imap_table(imap_account, tmp_path),
            "monitoring": {"port": 0},
            "calendar": {"timezone": "UTC", "hours": {d: ["00:00-24:00"] for d in every_day}},
        }
        settings = parse_config(data, source="t.toml", base_dir=tmp_path)
        db = Database.open(settings.database_url)
        now = datetime.now(UTC)
        dovecot.append(imap_account, message(1, date=format_datetime(now)))
        daemon = Daemon(settings, db, clock=FixedClock(now))
        daemon.poll_once()
        daemon.clock = FixedClock(now + timedelta(hours=3.5))  # 4h first response: warned
        assert daemon.sla_pass() == 1
        daemon.clock = FixedClock(now + timedelta(hours=5))  # breached
        assert daemon.sla_pass() == 1
        db.dispose()
    finally:
        configure_logging("console", "info")
    for kind in ("warning", "breach"):
        labels = {"type": kind, "target": "first_response"}
        assert _sample(metrics, "triage_sla_escalations_total", **labels) == 1


# -- the listener and the verdict without a daemon ----------------------------------------


def test_health_of_an_unreadable_database_is_unhealthy(tmp_path: Path) -> None:
    settings = parse_config({}, source="t.toml", base_dir=tmp_path)
    db = Database.open(f"sqlite:///{tmp_path / 'gone.db'}")
    db.dispose()
    (tmp_path / "gone.db").unlink()
    (tmp_path / "gone.db").mkdir()  # not a database file any more
    verdict = read_health(db, settings)
    assert not verdict.healthy
    assert verdict.problems[0].startswith("database: ")
    code, body = verdict.http()
    assert code == 503
    assert body == {"healthy": False, "problems": verdict.problems}


def test_listener_serves_metrics_and_health_and_refuses_the_rest(tmp_path: Path) -> None:
    settings = parse_config({}, source="t.toml", base_dir=tmp_path)
    db = Database.open(f"sqlite:///{tmp_path / 't.db'}")
    with db.session() as s:
        s.add(
            OutboxMail(
                kind="ack", message_id="<a@x>", mail_from="inbox@example.com",
                rcpt_to=["c@client.example"], raw=b"x", status="failed",
                last_error="550 no such user",
            )
        )  # fmt: skip
        s.add(Folder(name="INBOX", uidvalidity=7, last_uid=3, last_error=""))
    liveness = Liveness()
    liveness.expect("dispatch", 300)
    metrics = TriageMetrics(health=lambda: read_health(db, settings), liveness=liveness)
    server = MonitoringServer(metrics, lambda: read_health(db, settings), "127.0.0.1", 0)
    server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        samples = scrape(f"{base}/metrics")
        assert value(samples, "triage_outbox_mails", status="failed") == 1
        assert value(samples, "triage_healthy") == 0
        assert value(samples, "triage_loop_stalled", loop="dispatch") == 0
        assert value(samples, "process_resident_memory_bytes")
        code, body = get_json(f"{base}/health")
        assert code == 503
        assert body["problems"] == [
            "folder INBOX: never polled",
            "outbox: 1 outgoing mail failed",
        ]
        request = urllib.request.Request(f"{base}/health", method="POST")  # noqa: S310
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)  # noqa: S310 - loopback
        refused.value.close()
        assert refused.value.code == 405
    finally:
        server.stop()
        db.dispose()


# -- the Grafana dashboard -----------------------------------------------------------------

DASHBOARD = Path(__file__).resolve().parents[1] / "deploy" / "grafana-dashboard.json"


def test_the_grafana_dashboard_uses_only_metrics_the_daemon_exposes(tmp_path: Path) -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    used = {m for e in exprs for m in re.findall(r"\b(triage_[a-z0-9_]+)", e)}
    # what a daemon with a database, a model, loops and a few events exposes
    settings = parse_config({}, source="t.toml", base_dir=tmp_path)
    db = Database.open(f"sqlite:///{tmp_path / 't.db'}")
    with db.session() as s:
        s.add(Folder(name="INBOX", uidvalidity=7, last_uid=3, last_poll_at=datetime.now(UTC)))
    liveness = Liveness()
    liveness.expect("dispatch", 300)
    m = TriageMetrics(health=lambda: read_health(db, settings), liveness=liveness, process=False)
    for event, fields in [
        (
            "message_stored",
            {
                "source": "imap",
                "folder": "INBOX",
                "outcome": "stored",
                "internal_date": datetime.now(UTC).isoformat(),
            },
        ),
        ("message_routed", {"queue": "billing", "decided_by": "model", "confidence": 0.8}),
        ("imap_reconnecting", {"folder": "INBOX"}),
        ("ticket_escalated", {"kind": "first_response"}),
        ("mail_sent", {"kind": "ack"}),
        ("oauth2_token_obtained", {}),
    ]:
        m.observe(event, fields)
    exposed = {s.name for family in m.registry.collect() for s in family.samples} | {
        family.name for family in m.registry.collect()
    }
    db.dispose()
    assert used, "no triage metric found in the dashboard"
    assert used - exposed == set()
    # every panel has a datasource placeholder resolved at import, and a unique id
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert dashboard["__inputs"][0]["name"] == "DS_PROMETHEUS"


def test_the_dashboard_file_is_what_the_script_writes(tmp_path: Path) -> None:
    script = Path(__file__).resolve().parents[1] / "scripts" / "make_grafana_dashboard.py"
    namespace = runpy.run_path(str(script), run_name="dashboard_script")
    assert json.loads(DASHBOARD.read_text(encoding="utf-8")) == namespace["DASHBOARD"]


# -- the web page serves them too (loopback clients only) ---------------------------------


def test_the_web_page_serves_metrics_and_health_to_loopback_clients_only(tmp_path: Path) -> None:
    from starlette.testclient import TestClient  # noqa: PLC0415 - the web extra's test client
    from support.web import make_site  # noqa: PLC0415

    site = make_site(f"sqlite:///{tmp_path / 'web.db'}", tmp_path, now=datetime.now(UTC))
    app = site.app(origin="http://testserver")
    local = TestClient(app, client=("127.0.0.1", 40000), follow_redirects=False)
    metrics = local.get("/metrics")
    assert metrics.status_code == 200
    families = {f.name for f in text_string_to_metric_families(metrics.text)}
    assert {"triage_healthy", "triage_outbox_mails", "triage_status_up"} <= families
    health = local.get("/health")
    expected = read_health(site.db, site.settings)
    assert health.status_code == (200 if expected.healthy else 503)
    assert health.json()["problems"] == expected.problems
    healthy_line = next(
        line for line in metrics.text.splitlines() if line.startswith("triage_healthy ")
    )
    assert float(healthy_line.split()[1]) == (1.0 if expected.healthy else 0.0)
    remote = TestClient(app, client=("192.0.2.7", 40000), follow_redirects=False)
    assert remote.get("/metrics").status_code == 404
    assert remote.get("/health").status_code == 404
    site.db.dispose()
