"""Standing problems a service reports for people (``alerts``), read by ``triage status``.

A part that stops working until a person acts (the SMTP server refused the login:
sending has stopped) raises its alert once; :func:`~triage.services.status.read_status`
lists every alert as a problem, so ``triage status`` exits 1 and ``/health`` answers
503 at once. The part clears its alert when it works again. Each function runs in
the caller's session (and transaction).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from triage.store.models import Alert

__all__ = ["clear_alert", "raise_alert", "read_alerts"]

MAX_PROBLEM = 2000
"""Characters of a problem kept (a server's reply is quoted in it)."""


def raise_alert(session: Session, name: str, problem: str, now: datetime) -> None:
    """Record ``problem`` (one line, no secret) under ``name``; a standing alert keeps
    its ``since``."""
    problem = " ".join(problem.split())[:MAX_PROBLEM]
    row = session.get(Alert, name)
    if row is None:
        session.add(Alert(name=name, problem=problem, since=now))
    elif row.problem != problem:
        row.problem = problem


def clear_alert(session: Session, name: str) -> bool:
    """Remove the alert ``name``; True when there was one."""
    result = session.execute(delete(Alert).where(Alert.name == name))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def read_alerts(session: Session) -> list[tuple[str, str, datetime]]:
    """Every standing alert as ``(name, problem, since UTC)``, oldest first."""
    rows = session.execute(select(Alert.name, Alert.problem, Alert.since).order_by(Alert.since))
    return [(str(n), str(p), s) for n, p, s in rows]
