"""Benchmark: the read side and the periodic passes at 100,000 tickets (issue 13.8).

Builds a database of ``--tickets`` tickets fast (Core bulk inserts of tickets,
their first message, routing decision and ``opened`` audit row; the queue's sort
columns computed as the ORM would), against a real Dovecot (an empty inbox) and
aiosmtpd, then runs each command as an operator would (the installed ``triage``
console script, a new process each time) and reports its wall time and peak RSS
(``ru_maxrss`` of that child, from ``wait4``):

- ``triage queue --json`` (output to /dev/null), ``triage status``,
  ``triage show REF``;
- ``triage poll --once`` with no new mail, twice: the first pass meets the whole
  backlog (every overdue ticket gets its breach row, in bounded batches), the
  second is the steady state every periodic pass pays;
- ``triage rules test`` (replays every stored message: proportional to the mail);
- ``triage run`` sent SIGTERM in the middle of its first SLA pass over the backlog
  (a copy of the database from before the first pass): seconds until it exits;
- which commands import scikit-learn (``python -X importtime``).

Most open tickets are overdue (opened over the last 60 days, due 1 to 72 hours
later), created when opened: the first pass raises a breach for each of them. A
small queue model is active, so a command that loads it imports scikit-learn.

``--before DIR``: also run the ``triage`` package of another checkout (e.g. ``git
archive`` of the commit before a change, run with this Python and ``PYTHONPATH=DIR``)
on a copy of the same database (taken after the first pass; the indexes and schema
revision the older checkout does not know are removed from the copy), each command
interleaved with this one's (``--repeat`` times), and start-up on an empty database:
``--help``, ``show``, ``queue`` and ``poll --once`` with nothing to do (``--after DIR``:
run that copy of this checkout the same way, so the tree may change meanwhile). Figures are
wall seconds, CPU seconds (user + system: steadier than wall time on a shared machine)
and peak RSS, with the load average. ``--steps`` picks the measurements (default all).

    .venv/bin/python benchmarks/readside_bench.py [--tickets 100000] [--postgres]
        [--before DIR] [--repeat 2] [--steps startup,commands,first-pass,rules,sigterm,imports]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from sqlalchemy import insert  # noqa: E402
from support.daemonproc import daemon_config, triage_command, write_config  # noqa: E402
from support.dovecot import Dovecot  # noqa: E402
from support.postgres import postgres_unavailable_reason, throwaway_database  # noqa: E402
from support.smtp import SmtpServer  # noqa: E402

from triage.store import Database  # noqa: E402
from triage.store.models import (  # noqa: E402
    Message,
    RoutingDecision,
    Ticket,
    TicketEvent,
    queue_key,
)

NOW = datetime.now(UTC).replace(microsecond=0)
WORDS = ["invoice", "payment", "számla", "időpont", "receipt", "tax", "refund", "meeting"]
QUEUES = ["billing", "scheduling", "records", "client-support", "unsorted"]


def fill(db: Database, count: int, seed: int = 7) -> int:
    """Insert ``count`` tickets with one message, decision and audit row each.

    Returns the number of open tickets overdue at ``NOW``.
    """
    rng = random.Random(seed)
    batch = 5000
    overdue = 0
    for start in range(0, count, batch):
        tickets, messages, decisions, events = [], [], [], []
        for i in range(start, min(count, start + batch)):
            subject = " ".join(rng.sample(WORDS, 3)).capitalize() + f" {i}"
            body = " ".join(rng.choice(WORDS) for _ in range(40))
            addr = f"client{i % 20000}@example.com"
            opened = NOW - timedelta(minutes=rng.randint(1, 60 * 24 * 60))
            status = rng.choices(["new", "open", "waiting", "solved"], [30, 20, 10, 40])[0]
            due = opened + timedelta(hours=rng.randint(1, 72))
            queue = rng.choice(QUEUES)
            priority = rng.choice(["urgent", "high", "normal", "normal", "low"])
            row: dict[str, Any] = {
                "id": i + 1,
                "ref": 1001 + i,
                "queue": queue,
                "priority": priority,
                "status": status,
                "subject": subject,
                "client_addr": addr,
                "client_name": "Client",
                "assignee": rng.choice([None, "anna"]) if status != "new" else None,
                "decided_by": "rule",
                "tags": [],
                "created_at": opened,
                "updated_at": opened,
                "opened_at": opened,
                "first_response_due": due,
                "first_response_at": None,
                "next_response_due": None,
                "resolution_due": due + timedelta(days=3),
                "awaiting_since": opened if status in ("new", "open") else None,
                "waiting_since": opened if status == "waiting" else None,
                "solved_at": opened + timedelta(hours=5) if status == "solved" else None,
                "version": 1,
            }
            in_queue, queue_due, rank = queue_key(SimpleNamespace(**row))  # type: ignore[arg-type]
            row |= {"in_queue": in_queue, "queue_due": queue_due, "priority_rank": rank}
            overdue += status in ("new", "open") and queue_due < NOW
            tickets.append(row)
            raw = (
                f"From: Client <{addr}>\r\nTo: inbox@example.test\r\nSubject: {subject}\r\n"
                f"Message-ID: <r{i}@example.com>\r\n\r\n{body}\r\n"
            ).encode()
            messages.append(
                {
                    "id": i + 1,
                    "source": "imap",
                    "direction": "in",
                    "message_id": f"<r{i}@example.com>",
                    "raw_sha256": hashlib.sha256(raw).hexdigest(),
                    "raw": raw,
                    "raw_size": len(raw),
                    "received_at": opened,
                    "from_addr": addr,
                    "from_name": "Client",
                    "subject": subject,
                    "body_text": body,
                    "ticket_id": i + 1,
                    "created_at": opened,
                }
            )
            decisions.append(
                {
                    "message_id": i + 1,
                    "ticket_id": i + 1,
                    "queue": queue,
                    "priority": priority,
                    "decided_by": "fallback",
                    "created_at": opened,
                }
            )
            events.append({"ticket_id": i + 1, "at": opened, "actor": "triage", "action": "opened"})
        with db.session() as session:
            session.execute(insert(Ticket), tickets)
            session.execute(insert(Message), messages)
            session.execute(insert(RoutingDecision), decisions)
            session.execute(insert(TicketEvent), events)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    return overdue


def run(argv: list[str], *, env: dict[str, str] | None = None) -> tuple[float, float, int, str]:
    """Run a triage command; return (seconds, peak RSS MB, exit status, stderr tail)."""
    seconds, _cpu, rss, code, tail = run_cpu(argv, env=env)
    return seconds, rss, code, tail


def run_cpu(
    argv: list[str], *, env: dict[str, str] | None = None
) -> tuple[float, float, float, int, str]:
    """Run a command; return (wall s, CPU s (user + system), peak RSS MB, exit status,
    stderr tail).

    The peak is GNU time's ``%M`` of the command alone (``wait4`` from this process
    would count the copy of this process's memory the fork made before exec).
    """
    started = time.monotonic()
    with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as err:
        proc = subprocess.run(
            ["/usr/bin/time", "-q", "-f", "%M %U %S", "-o", rss.name, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
            check=False,
        )
        seconds = time.monotonic() - started
        err.seek(0)
        tail = err.read().decode("utf-8", "replace")[-600:]
        kib, user, system = Path(rss.name).read_text().split()[-3:]
    return seconds, float(user) + float(system), int(kib) / 1024, proc.returncode, tail


def activate_small_model(db: Database) -> None:
    """Train a small queue model (the tests' synthetic office mail) and activate it."""
    from test_classifier_data import dataset  # noqa: PLC0415 - scikit-learn, tests' data

    from classifiers.model import train  # noqa: PLC0415 - scikit-learn
    from triage.modelstore import save_model  # noqa: PLC0415

    examples, labels = dataset(4)
    with db.session() as session:
        save_model(session, train(examples, labels, trained_at=NOW), activate=True)


class Systems:
    """The command lines of the measured checkouts: ``after`` (this one, the installed
    console script) and, with ``--before``, ``before`` (``python -m triage`` with the
    other checkout first on ``PYTHONPATH``), each with its own database file."""

    def __init__(self, before: str, after: str = "") -> None:
        self.before = before
        self.roots = {"before": before, "after": after}
        self.names = ["before", "after"] if before else ["after"]

    def argv(self, system: str, config: Path) -> list[str]:
        if self.roots[system]:
            # -P: not the current directory first on sys.path (it may be a checkout too)
            return [sys.executable, "-P", "-m", "triage", "--config", str(config)]
        return [*triage_command(), "--config", str(config)]

    def env(self, system: str) -> dict[str, str]:
        return {"PYTHONPATH": self.roots[system]} if self.roots[system] else {}


def older_schema_copy(source: Path, target: Path, fresh: Path) -> None:
    """Copy SQLite database ``source`` to ``target`` as the older checkout's schema:
    the indexes a fresh database of that checkout (``fresh``) lacks are dropped and
    its revision written (extra columns stay: the older code never names them)."""
    import sqlite3  # noqa: PLC0415

    shutil.copy(source, target)
    with sqlite3.connect(fresh) as old:
        keep = {
            name for (name,) in old.execute("select name from sqlite_master where type='index'")
        }
        revision = old.execute("select version_num from alembic_version").fetchone()[0]
    with sqlite3.connect(target) as new:
        names = [n for (n,) in new.execute("select name from sqlite_master where type='index'")]
        for name in names:
            if name not in keep and not name.startswith("sqlite_autoindex"):
                new.execute(f'DROP INDEX "{name}"')
        new.execute("update alembic_version set version_num = ?", (revision,))


def imports_sklearn(argv: list[str]) -> bool:
    """Whether the command imports scikit-learn (``python -X importtime``)."""
    script = triage_command()[0]
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", script, *argv],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    return any(
        line.rsplit("|", 1)[-1].strip().startswith("sklearn")
        for line in proc.stderr.decode("utf-8", "replace").splitlines()
        if line.startswith("import time:")
    )


def sigterm_during_first_pass(config: Path, log_path: Path, wait_s: float) -> tuple[float, int]:
    """Start ``triage run``, SIGTERM it ``wait_s`` s into its first SLA pass; (seconds, code)."""
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [*triage_command(), "--config", str(config), "run"],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
        )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and b"sla_pass_started" not in log_path.read_bytes():
        if b"daemon_started" in log_path.read_bytes():
            break
        time.sleep(0.05)
    time.sleep(wait_s)
    sent = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=900)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    return time.monotonic() - sent, code


def measure(  # noqa: PLR0917 - the benchmark's one step, all positional
    name: str,
    url: str,
    base: Path,
    count: int,
    dovecot: Dovecot,
    smtp_port: int,
    args: argparse.Namespace,
) -> dict[str, Any]:
    steps = set(args.steps.split(","))
    systems = Systems(args.before if url.startswith("sqlite:///") else "", args.after)
    print(f"{name}: filling {count} tickets", flush=True)
    account = dovecot.add_user()
    data = daemon_config(account, smtp_port, url, base, monitoring={"port": 0})
    data["logging"] = {"format": "json", "level": "info"}
    config = write_config(base / f"{name}.toml", data)
    triage = [*triage_command(), "--config", str(config)]
    subprocess.run([*triage, "init"], check=True, capture_output=True)
    db = Database.open(url)
    started = time.monotonic()
    overdue = fill(db, count)
    activate_small_model(db)
    db.dispose()
    print(f"  filled in {time.monotonic() - started:.0f} s; {overdue} open tickets overdue")
    copy = None
    if url.startswith("sqlite:///"):
        copy = base / f"{name}-before.db"
        shutil.copy(url.removeprefix("sqlite:///"), copy)
    results: dict[str, Any] = {"overdue": overdue}

    def timed(label: str, argv: list[str]) -> None:
        seconds, rss, code, tail = run([*triage, *argv])
        results[label] = {"s": round(seconds, 2), "rss_mb": round(rss), "exit": code}
        load = os.getloadavg()[0]
        print(f"  {label:28s} {seconds:7.2f} s {rss:6.0f} MB  exit {code}  (load {load:.1f})")
        if code not in (0, 1):
            print("    " + tail.replace("\n", "\n    "))

    if "first-pass" in steps:
        timed("poll --once (first pass)", ["poll", "--once"])
    configs = {"after": config}
    if systems.before:
        configs["before"] = before_database(name, url, base, data, systems)
    if "commands" in steps:
        compare(
            results,
            systems,
            configs,
            [
                ["queue", "--json"],
                ["queue"],
                ["status"],
                ["status", "--json"],
                ["show", str(1001 + count // 2)],
                ["poll", "--once"],
            ],
            args.repeat,
        )
    if "startup" in steps:
        empty = {}
        for system in systems.names:
            empty_data = {**data, "database": {"url": f"sqlite:///{base / f'empty-{system}.db'}"}}
            empty[system] = write_config(base / f"empty-{system}.toml", empty_data)
            subprocess.run(
                [*systems.argv(system, empty[system]), "init"],
                env={**os.environ, **systems.env(system)},
                check=True,
                capture_output=True,
            )
        print("  start-up, an empty database:")
        results["startup"] = {}
        compare(
            results["startup"],
            systems,
            empty,
            [["--help"], ["show", "1001"], ["queue"], ["poll", "--once"]],
            args.repeat,
        )
    if "rules" in steps:
        timed("rules test", ["rules", "test"])
    if "imports" in steps:
        results["imports_sklearn"] = {
            " ".join(argv): imports_sklearn(["--config", str(config), *argv])
            for argv in (["queue", "--json"], ["status"], ["show", "1001"], ["poll", "--once"])
        }
        print(f"  imports scikit-learn: {results['imports_sklearn']}")
    if copy is not None and "sigterm" in steps:
        shutil.copy(copy, url.removeprefix("sqlite:///"))
        seconds, code = sigterm_during_first_pass(config, base / f"{name}-run.log", 3.0)
        results["sigterm_first_pass_s"] = round(seconds, 2)
        print(f"  SIGTERM 3 s into the first pass: exited {code} after {seconds:.2f} s")
    return results


def before_database(
    name: str, url: str, base: Path, data: dict[str, Any], systems: Systems
) -> Path:
    """A copy of the SQLite database at ``url`` for the older checkout; its config."""
    fresh = base / f"{name}-before-schema.db"
    schema_config = write_config(
        base / f"{name}-before-schema.toml", {**data, "database": {"url": f"sqlite:///{fresh}"}}
    )
    subprocess.run(
        [*systems.argv("before", schema_config), "init"],
        env={**os.environ, **systems.env("before")},
        check=True,
        capture_output=True,
    )
    older = base / f"{name}-older.db"
    older_schema_copy(Path(url.removeprefix("sqlite:///")), older, fresh)
    return write_config(
        base / f"{name}-older.toml", {**data, "database": {"url": f"sqlite:///{older}"}}
    )


def compare(
    results: dict[str, Any],
    systems: Systems,
    configs: dict[str, Path],
    commands: list[list[str]],
    repeat: int,
) -> None:
    """Each command ``repeat`` times per system, the systems interleaved; print and keep
    the fastest run of each (wall, CPU, RSS, exit) with the load average."""
    for argv in commands:
        label = " ".join(argv)
        best: dict[str, tuple[float, float, float, int]] = {}
        for _ in range(repeat):
            for system in systems.names:
                wall, cpu, rss, code, tail = run_cpu(
                    [*systems.argv(system, configs[system]), *argv], env=systems.env(system)
                )
                if code not in (0, 1):
                    print(f"    {system} {label}: exit {code}: " + tail.replace("\n", "\n    "))
                if system not in best or cpu < best[system][1]:
                    best[system] = (wall, cpu, rss, code)
        load = os.getloadavg()[0]
        line = "  ".join(
            f"{system} {w:6.2f} s wall {c:5.2f} s CPU {r:4.0f} MB"
            for system, (w, c, r, _code) in best.items()
        )
        print(f"  {label:16s} {line}  (load {load:.1f})", flush=True)
        results[label] = {
            system: {"s": round(w, 2), "cpu_s": round(c, 2), "rss_mb": round(r), "exit": code}
            for system, (w, c, r, code) in best.items()
        } | {"load": round(load, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
    parser.add_argument("--before", default="", help="a checkout to run as 'before' (SQLite)")
    parser.add_argument(
        "--after", default="", help="a fixed copy of this checkout to run as 'after'"
    )
    parser.add_argument("--repeat", type=int, default=2, help="runs per command and system")
    parser.add_argument(
        "--steps",
        default="first-pass,commands,startup,rules,imports,sigterm",
        help="which measurements (comma-separated)",
    )
    args = parser.parse_args()
    results: dict[str, Any] = {"tickets": args.tickets}
    dovecot = Dovecot()
    dovecot.start()
    smtp = SmtpServer()
    smtp.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            url = f"sqlite:///{base / 'bench.db'}"
            results["sqlite"] = measure("sqlite", url, base, args.tickets, dovecot, smtp.port, args)
            if args.postgres:
                reason = postgres_unavailable_reason()
                if reason:
                    print(f"PostgreSQL skipped: {reason}")
                else:
                    with throwaway_database() as pg_url:
                        results["postgresql"] = measure(
                            "postgresql", pg_url, base, args.tickets, dovecot, smtp.port, args
                        )
    finally:
        smtp.stop()
        dovecot.stop()
    results["uptime"] = subprocess.run(
        ["uptime"], capture_output=True, text=True, check=False
    ).stdout.strip()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
