"""The daemon in-process against the real Dovecot (IDLE) and a real aiosmtpd.

The end-to-end tests with the daemon as a separate process (SIGTERM, SIGKILL,
Dovecot restarts, corpus mail) are in test_e2e_daemon.py.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import func, select
from support.dovecot import Dovecot, ImapAccount
from support.mailtest import imap_table, message
from support.smtp import SmtpServer

from triage.config import Settings, parse_config
from triage.daemon import Daemon
from triage.errors import RuleFileError
from triage.store import Database
from triage.store.models import Message, OutboxMail, Ticket

pytestmark = pytest.mark.imap
ROOT = Path(__file__).resolve().parents[1]


def daemon_settings(
    account: ImapAccount, smtp: SmtpServer, db_url: str, tmp_path: Path, **extra: object
) -> Settings:
    data: dict[str, object] = {
        "database": {"url": db_url},
        "imap": imap_table(account, tmp_path, poll_interval=1, fallback_poll=5),
        "smtp": {
            "mode": "send",
            "host": "127.0.0.1",
            "port": smtp.port,
            "security": "none",
            "from_address": "Office <inbox@example.test>",
            "retry_initial": 1,
        },
        "queues": {
            q: {} for q in ("billing", "scheduling", "records", "client-support", "unsorted")
        }
        | {"bulk": {"no_sla": True}},
        "team": {"assistants": {"anna": "anna@example.test"}},
        "routing": {
            "rule_files": [str(ROOT / "rules" / "default.toml")],
            "bulk_queue": "bulk",
        },
        "lists": {"vip_clients": [], "blocked_senders": []},
        "calendar": {
            "timezone": "Europe/Budapest",
            "hours": {
                d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
            },
        },
    }
    data.update(extra)
    return parse_config(data, source=str(tmp_path / "t.toml"), base_dir=tmp_path)


@contextmanager
def running(daemon: Daemon) -> Iterator[None]:
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(daemon.run(stop),))
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(15)
        assert not thread.is_alive(), "the daemon did not stop within 15 s"
        loop.close()


def count(db: Database, model: type) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_daemon_ingests_routes_and_acknowledges_with_idle(
    dovecot: Dovecot,
    imap_account: ImapAccount,
    smtp_server: SmtpServer,
    sqlite_url: str,
    tmp_path: Path,
) -> None:
    settings = daemon_settings(imap_account, smtp_server, sqlite_url, tmp_path)
    db = Database.open(settings.database_url)
    for n in range(3):
        dovecot.append(
            imap_account, message(n, sender=f"client{n}@example.net", subject=f"Invoice {n}")
        )
    daemon = Daemon(settings, db, sla_interval=1)
    with running(daemon):
        assert len(smtp_server.sink.wait_for(3, timeout=20)) == 3
        started = time.monotonic()
        dovecot.append(imap_account, message(10, sender="late@example.net", subject="Invoice 10"))
        got = smtp_server.sink.wait_for(4, timeout=20)
        latency = time.monotonic() - started
    assert len(got) == 4
    assert latency < 10  # IDLE, not the 5 s fallback poll alone, brought it in
    assert count(db, Message) == 4
    assert count(db, Ticket) == 4
    rcpts = sorted(r.rcpt_tos[0] for r in got)
    assert rcpts == [
        "client0@example.net",
        "client1@example.net",
        "client2@example.net",
        "late@example.net",
    ]
    for received in got:
        assert received.message["Auto-Submitted"] == "auto-replied"
    with db.session() as s:
        assert {o.status for o in s.scalars(select(OutboxMail))} == {"sent"}
    db.dispose()


def test_daemon_refuses_to_start_with_a_broken_rule_file(
    imap_account: ImapAccount, smtp_server: SmtpServer, sqlite_url: str, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.toml"
    broken.write_text(
        '[[rule]]\nname = "x"\nwhen = { field = "nope", equals = "a" }\n'
        'then = { queue = "billing" }\n'
    )
    settings = daemon_settings(
        imap_account, smtp_server, sqlite_url, tmp_path,
        routing={"rule_files": [str(broken)]},
    )  # fmt: skip
    db = Database.open(settings.database_url)
    with pytest.raises(RuleFileError, match=r"broken\.toml"):
        Daemon(settings, db)
    db.dispose()


def test_sighup_reload_keeps_old_rules_when_new_are_broken(
    imap_account: ImapAccount, smtp_server: SmtpServer, sqlite_url: str, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        '[[rule]]\nname = "all-billing"\nwhen = { always = true }\nthen = { queue = "billing" }\n'
    )
    settings = daemon_settings(
        imap_account, smtp_server, sqlite_url, tmp_path, routing={"rule_files": [str(rules)]}
    )
    db = Database.open(settings.database_url)
    daemon = Daemon(settings, db)
    old = daemon.rules.rules
    rules.write_text(
        '[[rule]]\nname = "bad"\nwhen = { field = "subject", regex = "(" }\n'
        'then = { queue = "billing" }\n'
    )
    assert daemon.reload_rules() is False
    assert daemon.rules.rules is old
    rules.write_text(
        '[[rule]]\nname = "to-unsorted"\nwhen = { always = true }\nthen = { queue = "unsorted" }\n'
    )
    assert daemon.reload_rules() is True
    assert daemon.rules.rules is not old
    assert daemon.rules.rules is not None
    db.dispose()
