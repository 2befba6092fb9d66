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
later), created when opened: the first pass raises a breach for each of them.

    .venv/bin/python benchmarks/readside_bench.py [--tickets 100000] [--postgres]
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
    """Run a triage command; return (seconds, peak RSS MB, exit status, stderr tail).

    The peak is GNU time's ``%M`` of the command alone (``wait4`` from this process
    would count the copy of this process's memory the fork made before exec).
    """
    started = time.monotonic()
    with tempfile.NamedTemporaryFile() as rss, tempfile.TemporaryFile() as err:
        proc = subprocess.run(
            ["/usr/bin/time", "-q", "-f", "%M", "-o", rss.name, *argv],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
            env={**os.environ, **(env or {})},
            check=False,
        )
        seconds = time.monotonic() - started
        err.seek(0)
        tail = err.read().decode("utf-8", "replace")[-600:]
        kib = int(Path(rss.name).read_text().split()[-1])
    return seconds, kib / 1024, proc.returncode, tail


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
    name: str, url: str, base: Path, count: int, dovecot: Dovecot, smtp_port: int
) -> dict[str, Any]:
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

    timed("poll --once (first pass)", ["poll", "--once"])
    timed("poll --once", ["poll", "--once"])
    timed("poll --once (again)", ["poll", "--once"])
    timed("queue --json", ["queue", "--json"])
    timed("queue", ["queue"])
    timed("status", ["status"])
    timed("status --json", ["status", "--json"])
    timed("show", ["show", str(1001 + count // 2)])
    timed("rules test", ["rules", "test"])
    results["imports_sklearn"] = {
        " ".join(argv): imports_sklearn(["--config", str(config), *argv])
        for argv in (["queue", "--json"], ["status"], ["show", "1001"], ["poll", "--once"])
    }
    print(f"  imports scikit-learn: {results['imports_sklearn']}")
    if copy is not None:
        shutil.copy(copy, url.removeprefix("sqlite:///"))
        seconds, code = sigterm_during_first_pass(config, base / f"{name}-run.log", 3.0)
        results["sigterm_first_pass_s"] = round(seconds, 2)
        print(f"  SIGTERM 3 s into the first pass: exited {code} after {seconds:.2f} s")
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--postgres", action="store_true", help="also on PostgreSQL")
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
            results["sqlite"] = measure("sqlite", url, base, args.tickets, dovecot, smtp.port)
            if args.postgres:
                reason = postgres_unavailable_reason()
                if reason:
                    print(f"PostgreSQL skipped: {reason}")
                else:
                    with throwaway_database() as pg_url:
                        results["postgresql"] = measure(
                            "postgresql", pg_url, base, args.tickets, dovecot, smtp.port
                        )
    finally:
        smtp.stop()
        dovecot.stop()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
