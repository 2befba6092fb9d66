"""Demo accounts for ``triage demo --serve``: every assistant of the demo and one owner."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import delete

from triage.accounts import add_user
from triage.clock import utcnow
from triage.config import Settings
from triage.store import Database
from triage.store.models import User, WebSession

__all__ = ["DemoAccount", "make_demo_accounts"]

DEMO_OWNER = "owner"


@dataclass(frozen=True)
class DemoAccount:
    """A login printed on the terminal (the demo's database is throwaway)."""

    name: str
    role: str
    password: str


def make_demo_accounts(db: Database, settings: Settings) -> list[DemoAccount]:
    """Replace the demo database's users with the assistants and an owner, each with a
    fresh random password (16 characters, ``secrets``)."""
    accounts = [DemoAccount(name, "assistant", "") for name in sorted(settings.team.assistants)]
    accounts.append(DemoAccount(DEMO_OWNER, "owner", ""))
    made: list[DemoAccount] = []
    now = utcnow()
    with db.session() as session:
        session.execute(delete(WebSession))
        session.execute(delete(User))
        for account in accounts:
            password = secrets.token_urlsafe(12)
            add_user(session, settings, account.name, role=account.role, password=password, now=now)
            made.append(DemoAccount(account.name, account.role, password))
    return made
