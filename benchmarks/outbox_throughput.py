"""Outbox throughput: composing + queueing acknowledgments, then delivering them over SMTP.

Usage: python benchmarks/outbox_throughput.py [COUNT] [sqlite|postgresql]

``postgresql`` creates a throwaway database at 127.0.0.1:5432 (user postgres) and
drops it afterwards.

Measures, on loopback with an in-process aiosmtpd that accepts everything:
1. plan_ack + compose_ack + enqueue, one transaction per acknowledgment (as intake does);
2. the dispatcher delivering the backlog (one SMTP session per pass of 100 rows,
   two commits per mail: the lease and the "sent" mark).
"""

from __future__ import annotations

import asyncio
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from aiosmtpd.controller import Controller

from triage.config import parse_config
from triage.domain import Address, InboundMessage
from triage.logs import configure_logging
from triage.outbox import MailTemplates, compose_ack, decide_ack, enqueue
from triage.services.dispatch import Dispatcher
from triage.smtp import SmtpSender
from triage.store import Database


class Sink:
    def __init__(self) -> None:
        self.count = 0

    async def handle_DATA(self, _server: object, _session: object, _envelope: object) -> str:  # noqa: N802
        self.count += 1
        return "250 OK"


@contextmanager
def database_url(kind: str, workdir: Path) -> Iterator[str]:
    """An empty database of ``kind`` (sqlite or postgresql), removed afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    import psycopg  # noqa: PLC0415 - only for the PostgreSQL run

    name = f"triage_bench_{uuid.uuid4().hex[:10]}"
    admin = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    configure_logging("console", "warning")
    count = int(sys.argv[1]) if len(sys.argv) > 1 else 1000
    kind = sys.argv[2] if len(sys.argv) > 2 else "sqlite"
    workdir = Path(tempfile.mkdtemp(prefix="outbox-bench."))
    with database_url(kind, workdir) as url:
        run(count, url, workdir)


def run(count: int, url: str, workdir: Path) -> None:
    """Queue ``count`` acknowledgments into ``url``, then deliver them; print the rates."""
    settings = parse_config(
        {
            "smtp": {"host": "127.0.0.1", "from_address": "Office <inbox@example.com>"},
            "calendar": {"timezone": "Europe/Budapest"},
            "acknowledgments": {"max_per_sender_per_hour": 1_000_000},
        },
        source="bench",
        base_dir=workdir,
    )
    db = Database.open(url)
    templates = MailTemplates.from_settings(settings)
    now = datetime.now(UTC)
    started = time.perf_counter()
    for n in range(count):
        message = InboundMessage(
            message_id=f"<bench.{n}@client.example>",
            subject=f"Számla kérdés {n} – sürgős",
            received_at=now,
            from_=Address("Kovács Ödön", f"client{n % 50}@example.net"),
            language="hu" if n % 2 else "en",
        )
        with db.session() as s:
            if decide_ack(s, message, settings, now=now).send:
                mail = compose_ack(
                    message, ticket_ref=n, queue="unsorted", due_at=now, settings=settings,
                    now=now, templates=templates,
                )  # fmt: skip
                enqueue(s, mail, kind="ack", now=now, dedupe_key=f"ack:{n}")
    queued = time.perf_counter() - started

    sink = Sink()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    sender = SmtpSender("127.0.0.1", port, security="none", timeout=10)
    dispatcher = Dispatcher(db, sender)

    async def drain() -> None:
        while (await dispatcher.run_once()).handled:
            pass

    started = time.perf_counter()
    asyncio.run(drain())
    sent = time.perf_counter() - started
    controller.stop()
    db.dispose()
    print(f"database: {url.split(':', 1)[0]}, {count} acknowledgments")
    print(f"compose + enqueue: {count / queued:,.0f} acks/s ({queued:.2f} s)")
    rate = sink.count / sent
    print(f"dispatch over SMTP: {rate:,.0f} mails/s ({sent:.2f} s, {sink.count} received)")


if __name__ == "__main__":
    main()
