"""Regression tests for faults the end-to-end work found outside the speed fixes.

- `triage poll --once` with ``[imap]`` but no ``[smtp]`` failed at start ("no [smtp]
  section") once it went through :class:`~triage.daemon.Daemon`: ingesting and
  routing need no SMTP server. Now it stores and routes (acknowledgments are not
  queued, reason ``no_smtp``); only ``triage run`` insists on ``[smtp]``.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import imap_table, message

from triage.config import parse_config
from triage.daemon import Daemon
from triage.errors import ConfigError
from triage.store import Database
from triage.store.models import OutboxMail, RoutingDecision, Ticket

pytestmark = pytest.mark.imap


def test_poll_once_without_smtp_stores_and_routes_and_run_refuses(
    dovecot: Dovecot, imap_account: ImapAccount, sqlite_url: str, tmp_path: Path
) -> None:
    dovecot.append(imap_account, message(1, subject="Invoice 1"))
    dovecot.append(imap_account, message(2, subject="Where is my order?"))
    settings = parse_config(
        {
            "database": {"url": sqlite_url},
            "imap": imap_table(imap_account, tmp_path),
            "queues": {"billing": {}, "unsorted": {}},
        },
        source=str(tmp_path / "t.toml"),
        base_dir=tmp_path,
    )
    db = Database.open(sqlite_url)
    try:
        daemon = Daemon(settings, db)
        summary = daemon.poll_once()
        [folder] = summary.folders
        assert folder.report is not None, folder.error
        assert folder.report.stored == 2
        assert summary.sent.handled == 0
        with db.read_session() as s:
            acks = {d.ack for d in s.scalars(select(RoutingDecision))}
            assert len(s.scalars(select(Ticket)).all()) == 2
            assert s.scalars(select(OutboxMail)).all() == []
        assert acks == {"no_smtp"}
        with pytest.raises(ConfigError, match=r"no \[smtp\] section"):
            asyncio.run(daemon.run(asyncio.Event()))
    finally:
        db.dispose()
