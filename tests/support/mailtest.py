"""Helpers for the intake tests: settings pointing at the test Dovecot, and small messages."""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

from support.dovecot import ImapAccount
from triage.config import ImapSettings, Settings, parse_config
from triage.store.models import Ticket


def imap_table(
    account: ImapAccount, tmp_path: Path, *, security: str = "none", **overrides: Any
) -> dict[str, Any]:
    """An ``[imap]`` table for ``account`` (password in a file under ``tmp_path``)."""
    secret = tmp_path / f"imap-password-{account.username}"
    secret.write_text(account.password + "\n", encoding="utf-8")
    table: dict[str, Any] = {
        "host": "localhost" if security != "none" else "127.0.0.1",
        "port": account.tls_port if security == "tls" else account.port,
        "security": security,
        "username": account.username,
        "password_file": str(secret),
        "ca_file": account.cafile,
        "timeout": 10,
    }
    table.update(overrides)
    return table


def imap_settings(
    account: ImapAccount, tmp_path: Path, *, security: str = "none", **overrides: Any
) -> ImapSettings:
    """Validated ImapSettings for ``account``."""
    return ImapSettings.model_validate(
        imap_table(account, tmp_path, security=security, **overrides)
    )


def settings_for(
    account: ImapAccount, db_url: str, tmp_path: Path, **imap_overrides: Any
) -> Settings:
    """Whole Settings: the given database and ``account`` as the watched inbox."""
    return parse_config(
        {
            "database": {"url": db_url},
            "imap": imap_table(account, tmp_path, **imap_overrides),
            "monitoring": {"port": 0},  # a free port: test runs may overlap
        },
        source=str(tmp_path / "test.toml"),
        base_dir=tmp_path,
    )


def message(
    n: int,
    *,
    subject: str | None = None,
    message_id: str | None = "",
    sender: str = "client@example.net",
    date: str = "Mon, 06 Jan 2025 09:30:00 +0100",
    body: str = "",
) -> bytes:
    """A small RFC 5322 message; ``message_id=None`` leaves the header out."""
    lines = [
        f"From: Client {n} <{sender}>",
        "To: inbox@example.test",
        f"Subject: {subject if subject is not None else f'Request {n}'}",
        f"Date: {date}",
    ]
    if message_id is not None:
        lines.append(f"Message-ID: {message_id or f'<msg-{n}@example.net>'}")
    lines += ["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", ""]
    lines.append(body or f"Hello, this is request number {n}.")
    return ("\r\n".join(lines) + "\r\n").encode()


def append_many(
    client: Any, raws: list[bytes], folder: str = "INBOX", msg_time: datetime | None = None
) -> None:
    """APPEND every message over one logged-in imapclient connection."""
    for raw in raws:
        client.append(folder, raw, flags=(), msg_time=msg_time)


class TicketPipeline:
    """A stand-in for the lead's routing pipeline: one ticket per message, in its transaction.

    ``fail_subjects``: messages whose subject contains one of these raise after the
    ticket was added (so a rollback must remove it). Messages stored with
    ``parse_status == "error"`` get a ticket in the ``fallback`` queue. ``calls``
    records (subject, parse_status) of every call.
    """

    def __init__(self, *, fail_subjects: tuple[str, ...] = (), always_fail: bool = False) -> None:
        self.fail_subjects = fail_subjects
        self.always_fail = always_fail
        self.calls: list[tuple[str, str]] = []

    def process(self, session: Any, row: Any, message: Any) -> None:
        self.calls.append((message.subject, str(message.parse_status)))
        error = str(message.parse_status) == "error"
        ticket = Ticket(
            queue="fallback" if error else "general",
            priority="normal",
            subject=message.subject,
            opened_at=message.received_at,
        )
        session.add(ticket)
        session.flush()
        row.ticket_id = ticket.id
        if self.always_fail or (
            not error and any(s in message.subject for s in self.fail_subjects)
        ):
            raise RuntimeError(f"pipeline exploded on {message.subject!r}")


def reset_logging() -> None:
    """Undo the logging set up by an in-process CLI call.

    ``main()`` configures structlog and stdlib logging to write to the
    ``sys.stderr`` of that moment, which under pytest is a capture stream closed
    after the test; later tests would then fail writing a log line.
    """
    structlog.reset_defaults()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
