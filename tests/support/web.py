"""Test support for the web page: a configured site with users and tickets, served for real.

``serve(app)`` runs uvicorn on a free loopback port in a thread (WEB.md's recipe):
the browser tests drive it with Debian's Chromium through Playwright.
"""

from __future__ import annotations

import threading
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import uvicorn
from sqlalchemy import select
from starlette.applications import Starlette

from support.ports import free_port
from support.tickets import config_text, store_message
from triage.accounts import add_user
from triage.clock import Clock, FixedClock
from triage.config import Settings, parse_config
from triage.mail.parts import has_html_body
from triage.sla.deadlines import SlaPolicy
from triage.store import Database
from triage.store.models import RoutingDecision, Ticket, User
from triage.tickets import open_ticket
from triage.web import create_app

PASSWORD = "correct horse battery"
"""Every test user's password."""


def web_settings(url: str, base_dir: Path, *, extra: str = "") -> Settings:
    """The tickets test configuration plus a ``[web]`` section (and ``extra`` TOML)."""
    text = config_text(url) + '\n[web]\ndefault_language = "en"\n' + extra
    return parse_config(tomllib.loads(text), source="test.toml", base_dir=base_dir)


@dataclass
class Site:
    """A configured site: settings, database, users anna and bela (assistants), olga (owner)."""

    settings: Settings
    db: Database
    clock: Clock

    @property
    def policy(self) -> SlaPolicy:
        """The SLA policy of the settings."""
        return SlaPolicy(self.settings)

    def app(self, *, origin: str | None = None) -> Starlette:
        """The web app of this site."""
        return create_app(self.settings, self.db, clock=self.clock, origin=origin)

    def add_users(self) -> None:
        """Add anna, bela (assistants) and olga (owner), all with :data:`PASSWORD`.

        The first is added through :func:`~triage.accounts.add_user`; the others reuse
        its argon2id hash (hashing costs a quarter second each on a loaded machine).
        """
        with self.db.session() as session:
            add_user(
                session,
                self.settings,
                "anna",
                role="assistant",
                password=PASSWORD,
                now=self.clock.now(),
            )
            hashed = session.scalars(select(User.password_hash)).one()
            for name, role in (("bela", "assistant"), ("olga", "owner")):
                session.add(User(name=name, role=role, password_hash=hashed))

    def ticket(
        self,
        subject: str = "Invoice question",
        *,
        queue: str = "billing",
        priority: str = "normal",
        from_addr: str = "client@example.com",
        from_name: str = "Client",
        body: str = "Hello",
        received_at: datetime | None = None,
        assignee: str | None = None,
        raw: bytes | None = None,
        attachments: tuple[dict[str, object], ...] = (),
        explanation: str = "rule 'invoice-words': subject contains 'invoice'",
    ) -> int:
        """Open a ticket from one stored client message; return its reference."""
        at = received_at or self.clock.now() - timedelta(hours=1)
        with self.db.session() as session:
            message = store_message(
                session,
                message_id=f"<{subject.encode().hex()[:20]}.{time.monotonic_ns()}@example.com>",
                received_at=at,
                subject=subject,
                from_addr=from_addr,
                from_name=from_name,
                body=body,
                attachments=attachments,
            )
            if raw is not None:
                message.raw = raw
                message.raw_size = len(raw)
                message.has_html = has_html_body(raw)  # as the INSERT hook would
            session.add(
                RoutingDecision(
                    message_id=message.id,
                    queue=queue,
                    priority=priority,
                    decided_by="rule",
                    rules_matched=["invoice-words"],
                    explanation=[explanation],
                )
            )
            ticket: Ticket = open_ticket(
                session,
                message,
                policy=self.policy,
                queue=queue,
                priority=priority,
                decided_by="rule",
                now=self.clock.now(),
                assignee=assignee,
            )
            return int(ticket.ref or 0)


def make_site(url: str, base_dir: Path, *, now: datetime, extra: str = "") -> Site:
    """A migrated database with the three users; the clock fixed at ``now``."""
    settings = web_settings(url, base_dir, extra=extra)
    db = Database.open(settings.database_url)
    site = Site(settings=settings, db=db, clock=FixedClock(now))
    site.add_users()
    return site


@contextmanager
def serve(app: Starlette) -> Iterator[str]:
    """Serve ``app`` on a free loopback port in a thread; yield its base URL."""
    port = free_port()
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        log_config=None,
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=3,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the web server did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=20)
