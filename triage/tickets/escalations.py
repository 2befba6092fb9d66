"""Escalation rows: SLA warnings and breaches, and escalations raised by rules.

One row per (ticket, kind, cycle), guaranteed by the unique constraint and an
``INSERT ... ON CONFLICT DO NOTHING``: two workers raising the same escalation at
once store it once, and raising it again is a no-op. The outbox turns rows whose
``notified_at`` is NULL into mail for the owners (or, for warnings, the assignee).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from triage.store.models import Escalation, Ticket
from triage.tickets.audit import SERVICE_ACTOR, record_event
from triage.tickets.deadlines import cycles

__all__ = ["RULE_KIND", "insert_escalation", "record_rule_escalation"]

RULE_KIND = "rule"
"""Escalation kind of a rule that escalates at once (VIP client, legal words)."""


def insert_escalation(
    session: Session,
    *,
    ticket_id: int,
    kind: str,
    cycle: int,
    reason: str,
    due_at: datetime | None,
    now: datetime,
) -> Escalation | None:
    """Store an escalation unless one with the same (ticket, kind, cycle) exists.

    Returns the new row, or None when it already existed (raised before, or by
    another worker at the same moment). Works on SQLite and PostgreSQL; does not
    commit.
    """
    values = {
        "ticket_id": ticket_id,
        "kind": kind,
        "cycle": cycle,
        "reason": reason,
        "due_at": due_at,
        "created_at": now,
    }
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        stmt = postgresql.insert(Escalation).values(**values)
        stmt = stmt.on_conflict_do_nothing(index_elements=["ticket_id", "kind", "cycle"])
        return session.scalars(stmt.returning(Escalation)).one_or_none()
    if dialect == "sqlite":
        lite = sqlite.insert(Escalation).values(**values)
        lite = lite.on_conflict_do_nothing(index_elements=["ticket_id", "kind", "cycle"])
        return session.scalars(lite.returning(Escalation)).one_or_none()
    raise NotImplementedError(f"escalations on {dialect} are not supported")  # pragma: no cover


def record_rule_escalation(
    session: Session, ticket: Ticket, reasons: Sequence[str], *, now: datetime
) -> Escalation | None:
    """Escalate ``ticket`` to the owners at once because rules said so (kind ``rule``).

    One per ticket and response cycle: a later client message in the same cycle that
    matches the rule again adds nothing. Returns the new row, or None when the ticket
    was already escalated by a rule in this cycle or ``reasons`` is empty. Writes an
    ``escalated`` audit row; does not commit.
    """
    if not reasons:
        return None
    session.flush()
    cycle = cycles(session, [ticket.id]).get(ticket.id)
    number = cycle.response if cycle else 0
    reason = "; ".join(r.strip() for r in reasons if r.strip())
    row = insert_escalation(
        session,
        ticket_id=ticket.id,
        kind=RULE_KIND,
        cycle=number,
        reason=reason,
        due_at=None,
        now=now,
    )
    if row is not None:
        record_event(
            session,
            ticket,
            actor=SERVICE_ACTOR,
            action="escalated",
            at=now,
            kind=RULE_KIND,
            cycle=number,
            reason=reason,
        )
    return row
