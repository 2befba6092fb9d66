"""`triage rules check` and `triage rules test`, run as a user runs them.

In-process through :func:`support.cli.run_triage` (click's CliRunner).
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from click.testing import Result
from sqlalchemy import select
from support.cli import run_triage

from triage.store import Database
from triage.store.models import Message, RoutingDecision, TrainingLabel

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> Result:
    return run_triage(*args, env=env, cwd=cwd)


GOOD = """
[defaults]
ignore_accents = true

[[rule]]
name = "invoice"
when = { field = "subject", contains = ["invoice", "számla"] }
then.queue = "billing"

[[rule]]
name = "vip-client"
when = { field = "from", in_list = "vip_clients" }
then = { priority = "high", tags = ["vip"] }

[[rule]]
name = "legal"
when = { field = "body", contains = "ügyvéd" }
then = { escalate = "possible legal threat", priority = "urgent" }
"""

BROKEN = """
[[rule]]
name = "typo-field"
when = { field = "subjct", contains = "invoice" }
then.queue = "billing"

[[rule]]
name = "typo-operator"
when = { field = "subject", contain = "invoice" }
then.queue = "billing"

[[rule]]
name = "bad-regex"
when = { field = "body", regex = '(\\d+)\\1' }
then.queue = "billing"

[[rule]]
name = "unknown-list"
when = { field = "from", in_list = "vips" }
then.priority = "high"

[[rule]]
name = "unknown-queue"
when = { field = "subject", contains = "receipt" }
then.queue = "recrods"
"""

CONFIG = """
[database]
url = "sqlite:///triage.db"

[queues.billing]
[queues.records]
[queues.scheduling]
[queues.client-support]
[queues.unsorted]

[routing]
rule_files = ["rules.toml"]
fallback_queue = "unsorted"
default_priority = "normal"

[lists]
vip_clients = ["bigclient.example"]

[calendar]
timezone = "Europe/Budapest"
"""


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    (tmp_path / "rules.toml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "broken.toml").write_text(BROKEN, encoding="utf-8")
    (tmp_path / "triage.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


# -- triage rules check --------------------------------------------------------------------


def test_check_a_good_file_without_config(workdir):
    done = run("rules", "check", str(workdir / "rules.toml"))
    assert done.exit_code == 0, done.stderr
    assert "ok: 3 rules in 1 file" in done.stdout
    assert "no configuration given" in done.stdout
    assert "queue, list and assistant names were not checked" in done.stdout


def test_check_prints_every_error_at_once_and_exits_2(workdir):
    broken = workdir / "broken.toml"
    done = run("--config", str(workdir / "triage.toml"), "rules", "check", str(broken))
    assert done.exit_code == 2
    assert "Traceback" not in done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1] == "5 problems found"
    for name, problem in [
        ("typo-field", "unknown field 'subjct'"),
        ("typo-operator", "unknown operator 'contain'"),
        ("bad-regex", "RE2 cannot compile it"),
        ("unknown-list", "unknown list 'vips'"),
        ("unknown-queue", "unknown queue 'recrods'"),
    ]:
        assert any(
            line.startswith(f"{broken}: rule '{name}': ") and problem in line for line in lines
        ), (name, lines)
    assert "ok:" not in done.stdout


def test_check_without_config_checks_all_but_names(workdir):
    done = run("rules", "check", str(workdir / "broken.toml"), str(workdir / "rules.toml"))
    assert done.exit_code == 2
    assert done.stderr.splitlines()[-1] == "3 problems found"
    assert "unknown queue" not in done.stderr
    assert "unknown list" not in done.stderr


def test_check_uses_the_config_from_the_environment_and_its_rule_files(workdir):
    done = run("rules", "check", env={"TRIAGE_CONFIG": str(workdir / "triage.toml")})
    assert done.exit_code == 0, done.stderr
    assert done.stdout.strip() == "ok: 3 rules in 1 file"


def test_check_the_shipped_rules_with_the_example_config():
    done = run("--config", str(ROOT / "config.example.toml"), "rules", "check", "--list")
    assert done.exit_code == 0, done.stderr
    assert "vip-client: when from address is in vip_clients → priority high, tag vip" in done.stdout
    assert done.stdout.splitlines()[-1].startswith("ok: ")


def test_check_without_files_or_config_is_a_usage_error(tmp_path):
    done = run("rules", "check", cwd=tmp_path)
    assert done.exit_code == 2
    assert "name the rule files to check" in done.stderr


def test_check_a_missing_file(tmp_path):
    done = run("rules", "check", str(tmp_path / "nope.toml"))
    assert done.exit_code == 2
    assert f"{tmp_path / 'nope.toml'}: rule file not found" in done.stderr


def _deep_rules(levels: int) -> str:
    when = '{ field = "subject", contains = "x" }'
    for _ in range(levels):
        when = "{ not = " + when + " }"
    return f'[[rule]]\nname = "deep"\nwhen = {when}\nthen.queue = "billing"\n'


@pytest.mark.parametrize(("levels", "problem"), [(500, "nesting too deep"), (60, "rule 'deep'")])
def test_deeply_nested_rules_are_one_line_not_a_traceback(workdir, levels, problem):
    deep = workdir / "deep.toml"
    deep.write_text(_deep_rules(levels), encoding="utf-8")
    config = str(workdir / "triage.toml")
    for args in (
        ("rules", "check", str(deep)),
        ("rules", "check", "--config", config, str(deep)),
        ("rules", "test", "--config", config, "--rules", str(deep)),
    ):
        done = run(*args)
        assert done.exit_code == 2, (args, done.stderr)
        assert "Traceback" not in done.stderr
        assert "RecursionError" not in done.stderr
        first = done.stderr.splitlines()[0].removeprefix("error: ")
        assert first.startswith(f"{deep}: {problem}"), (args, done.stderr)


def test_deeply_nested_config_is_one_line_for_every_command(workdir):
    config = workdir / "deep-config.toml"
    config.write_text(
        CONFIG.replace("[lists]\n", "[lists]\nblocked = " + "[" * 2000 + "]" * 2000 + "\n"),
        encoding="utf-8",
    )
    for args in (("rules", "check"), ("init",), ("queue",)):
        done = run("--config", str(config), *args)
        assert done.exit_code == 2, (args, done.stderr)
        assert done.stderr.strip() == (
            f"error: {config}: nesting too deep: arrays or tables nested hundreds of levels deep"
        )


# -- triage rules test --------------------------------------------------------------------


def raw_mail(subject: str, sender: str, body: str) -> bytes:
    mail = EmailMessage()
    mail["From"] = sender
    mail["To"] = "office@example.com"
    mail["Subject"] = subject
    mail["Message-ID"] = f"<{hashlib.sha256(subject.encode()).hexdigest()[:12]}@example.com>"
    mail.set_content(body)
    return bytes(mail)


def store(
    db: Database,
    *,
    subject: str,
    sender: str,
    body: str = "Hello.",
    received: datetime,
    decision: dict | None = None,
    direction: str = "in",
) -> None:
    raw = raw_mail(subject, sender, body)
    with db.session() as session:
        message = Message(
            source="imap",
            direction=direction,
            message_id=f"<{subject}>",
            raw_sha256=hashlib.sha256(raw).hexdigest(),
            raw=raw,
            raw_size=len(raw),
            received_at=received,
            from_addr=sender,
            subject=subject,
        )
        session.add(message)
        session.flush()
        if decision is not None:
            session.add(RoutingDecision(message_id=message.id, **decision))


def model(queue: str, priority: str = "normal") -> dict:
    return {
        "queue": queue,
        "priority": priority,
        "decided_by": "model",
        "confidence": 0.9,
        "ack": "no_smtp",  # the config has no [smtp] section
    }


@pytest.fixture
def history(workdir: Path) -> Path:
    fill_history(f"sqlite:///{workdir / 'triage.db'}")
    return workdir


def fill_history(url: str) -> None:
    db = Database.open(url)
    try:
        day = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
        store(
            db,
            subject="Invoice 42",
            sender="anna@bigclient.example",
            received=day,
            decision=model("client-support"),
        )
        store(
            db,
            subject="Hello there",
            sender="x@other.example",
            received=day.replace(hour=10),
            decision={
                "queue": "unsorted",
                "priority": "normal",
                "decided_by": "fallback",
                "ack": "no_smtp",
            },
        )
        store(
            db,
            subject="Meeting tomorrow",
            sender="x@other.example",
            received=day.replace(hour=11),
            decision={
                "queue": "scheduling",
                "priority": "high",
                "decided_by": "rule",
                "rules_matched": ["scheduling"],
                "explanation": ["rule 'scheduling': x"],
                "ack": "no_smtp",
            },
        )
        store(
            db,
            subject="Kérdés",
            sender="x@other.example",
            body="Az ügyvédem szerint...",
            received=day.replace(hour=12),
            decision=model("client-support", "urgent"),
        )
        store(
            db,
            subject="Számla május",
            sender="x@other.example",
            received=day.replace(hour=13),
            decision=None,
        )
        store(
            db,
            subject="Invoice 7 (our reply)",
            sender="office@example.com",
            received=day.replace(hour=14),
            direction="out",
        )
        store(
            db,
            subject="Old invoice",
            sender="x@other.example",
            received=datetime(2026, 1, 2, 9, 0, tzinfo=UTC),
            decision=model("client-support"),
        )
        store(
            db,
            subject="Invoice unchanged",
            sender="x@other.example",
            received=day.replace(hour=15),
            decision=model("billing"),
        )
    finally:
        db.dispose()


def dump(db_path: Path) -> list[str]:
    with sqlite3.connect(db_path) as conn:
        return list(conn.iterdump())


def test_replay_prints_changes_and_totals_and_writes_nothing(history):
    db_path = history / "triage.db"
    before = dump(db_path)
    done = run("--config", str(history / "triage.toml"), "rules", "test")
    assert done.exit_code == 0, done.stderr
    out = done.stdout
    assert dump(db_path) == before

    blocks = out.split("message ")
    invoice = next(b for b in blocks if "'Invoice 42'" in b)
    assert (
        "queue: client-support -> billing  (rule 'invoice': subject 'Invoice 42' contains"
        in invoice
    )
    assert (
        "priority: normal -> high  (rule 'vip-client': from domain bigclient.example is in"
        in invoice
    )

    # the whole decision is replayed: where no rule decides now, the active model or
    # (none here) the fallback queue does, and the output says which
    meeting = next(b for b in blocks if "'Meeting tomorrow'" in b)
    assert (
        "queue: scheduling -> unsorted  (no rule chose a queue and no classifier model is"
        " active; fallback queue 'unsorted')" in meeting
    )
    assert "priority: high -> normal  (no rule sets it)" in meeting

    legal = next(b for b in blocks if "'Kérdés'" in b)
    assert "escalation: none -> rule 'legal': possible legal threat" in legal
    assert "queue: client-support -> unsorted" in legal  # the model is not active now
    assert "priority" not in legal  # urgent stays urgent

    new = next(b for b in blocks if "'Számla május'" in b)
    assert "no stored decision; it would be: open in billing (rule)" in new

    assert "'Hello there'" not in out  # fallback stays fallback when no rule decides
    assert "Invoice unchanged" not in out
    assert "our reply" not in out  # outbound mail is not replayed
    assert "  acknowledgment changes: 0" in out  # no [smtp]: no_smtp before and after
    assert "replayed 7 messages: 4 would change" in out
    assert "  queue changes: 4" in out
    assert "  priority changes: 2" in out
    assert "  escalation changes: 1" in out
    assert "  without a stored decision: 1" in out


def test_replay_shows_a_progress_bar_on_a_terminal_proportional_to_the_mail(history):
    # stderr a terminal (FORCE_COLOR makes rich treat it as one): "replaying" with
    # messages done of the 7 replayed; the report itself on stdout is unchanged
    config = str(history / "triage.toml")
    plain = run("--config", config, "rules", "test", env={"FORCE_COLOR": ""})
    shown = run("--config", config, "rules", "test", env={"FORCE_COLOR": "1"})
    assert shown.exit_code == 0, shown.stderr
    assert "replaying" in shown.stderr
    assert "7/7" in shown.stderr
    assert "replaying" not in plain.stderr  # not a terminal: no bar
    assert "replayed 7 messages: 4 would change" in shown.stdout
    assert shown.stdout == plain.stdout


def snapshot(url: str) -> list[tuple]:
    db = Database.open(url, migrate=False)
    try:
        with db.sessions() as session:
            rows = [
                (m.id, m.raw, m.received_at, m.subject, m.ticket_id)
                for m in session.scalars(select(Message).order_by(Message.id))
            ]
            rows += [
                (d.id, d.message_id, d.queue, d.priority, d.decided_by, d.escalate, d.tags)
                for d in session.scalars(select(RoutingDecision).order_by(RoutingDecision.id))
            ]
            return rows
    finally:
        db.dispose()


def test_replay_on_each_database_kind(workdir, db_url):
    fill_history(db_url)
    config = workdir / "other.toml"
    config.write_text(CONFIG.replace("sqlite:///triage.db", db_url), encoding="utf-8")
    before = snapshot(db_url)
    done = run("--config", str(config), "rules", "test")
    assert done.exit_code == 0, done.stderr
    assert "replayed 7 messages: 4 would change" in done.stdout
    assert snapshot(db_url) == before


def test_replay_since_a_date_in_the_business_time_zone(history):
    done = run("--config", str(history / "triage.toml"), "rules", "test", "--since", "2026-05-01")
    assert done.exit_code == 0, done.stderr
    assert "Old invoice" not in done.stdout
    assert "replayed 6 messages" in done.stdout
    assert "since 2026-04-30 22:00 UTC" in done.stdout  # midnight in Budapest (CEST)
    everything = run("--config", str(history / "triage.toml"), "rules", "test")
    assert "'Old invoice'" in everything.stdout


def test_replay_candidate_rules_from_the_command_line(history):
    candidate = history / "candidate.toml"
    candidate.write_text(
        "[[rule]]\nname = 'all-to-records'\nwhen = { always = true }\nthen.queue = 'records'\n",
        encoding="utf-8",
    )
    done = run("--config", str(history / "triage.toml"), "rules", "test", "--rules", str(candidate))
    assert done.exit_code == 0, done.stderr
    assert "queue: client-support -> records  (rule 'all-to-records': every message" in done.stdout
    assert "queue: unsorted -> records" in done.stdout
    assert "queue changes: 6" in done.stdout


def test_replay_refuses_broken_candidate_rules(history):
    done = run(
        "--config",
        str(history / "triage.toml"),
        "rules",
        "test",
        "--rules",
        str(history / "broken.toml"),
    )
    assert done.exit_code == 2
    assert "unknown queue 'recrods'" in done.stderr
    assert "Traceback" not in done.stderr


def test_replay_needs_a_config(tmp_path):
    done = run("rules", "test", cwd=tmp_path)
    assert done.exit_code == 2
    assert "no configuration" in done.stderr


def test_replay_on_an_uninitialized_database_writes_nothing(workdir):
    done = run("--config", str(workdir / "triage.toml"), "rules", "test")
    assert done.exit_code == 2
    assert "run `triage init`" in done.stderr
    db = workdir / "triage.db"
    assert not db.exists() or dump(db) == dump(db)  # no schema was created
    if db.exists():
        with sqlite3.connect(db) as conn:
            assert conn.execute("select count(*) from sqlite_master").fetchone()[0] == 0


def test_replay_bad_since_is_a_usage_error(history):
    done = run("--config", str(history / "triage.toml"), "rules", "test", "--since", "May 1st")
    assert done.exit_code == 2
    assert "is not a date" in done.stderr


def test_replay_reads_many_messages_in_batches(workdir):
    db = Database.open(f"sqlite:///{workdir / 'triage.db'}")
    try:
        start = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
        for i in range(230):
            store(
                db,
                subject=f"Invoice {i}",
                sender="x@other.example",
                received=start.replace(minute=i % 60, hour=9 + i // 60),
                decision=model("client-support"),
            )
    finally:
        db.dispose()
    done = run("--config", str(workdir / "triage.toml"), "rules", "test")
    assert done.exit_code == 0, done.stderr
    assert "replayed 230 messages: 230 would change" in done.stdout
    assert done.stdout.count("queue: client-support -> billing") == 230


def correct(url: str, subject: str, queue: str) -> None:
    """Store an assistant's correction of the stored mail with ``subject`` (`triage move`)."""
    db = Database.open(url)
    try:
        with db.session() as session:
            message = session.scalars(select(Message).where(Message.subject == subject)).one()
            session.add(
                TrainingLabel(
                    message_id=message.id, subject=subject, queue=queue, source="correction"
                )
            )
    finally:
        db.dispose()


def test_replay_reports_each_rules_accuracy_against_corrections(history):
    url = f"sqlite:///{history / 'triage.db'}"
    correct(url, "Invoice 42", "records")  # the invoice rule took a forwarded supplier invoice
    correct(url, "Invoice unchanged", "billing")
    done = run("--config", str(history / "triage.toml"), "rules", "test")
    assert done.exit_code == 0, done.stderr
    out = done.stdout
    assert "note: no active model, so only corrections check the rules" in out
    line = next(x for x in out.splitlines() if x.startswith("  invoice: chose"))
    # invoice chose billing for: Invoice 42, Számla május, Old invoice, Invoice unchanged
    assert line == (
        "  invoice: chose 4; agrees 0.50 (corrections: 1 of 2 agree; confident model: 0 of 0"
        " agree; unchecked: 2)"
    )


@pytest.mark.slow
def test_replay_checks_rules_against_a_confident_model(history):
    """Without corrections the active model, where it is confident, is the yardstick."""
    trained = run("--config", str(history / "triage.toml"), "train")
    assert trained.exit_code == 0, trained.stderr
    done = run("--config", str(history / "triage.toml"), "rules", "test")
    assert done.exit_code == 0, done.stderr
    line = next(x for x in done.stdout.splitlines() if x.startswith("  invoice: chose"))
    checked = line.split("confident model: ")[1]
    agree, total = int(checked.split(" of ")[0]), int(checked.split(" of ")[1].split()[0])
    assert total >= 1
    assert 0 <= agree <= total
    assert "no active model" not in done.stdout
